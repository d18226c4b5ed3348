"""Precompute features for a corpus split: recordings + supervisions -> cuts with features.

Every recipe's ``prepare.sh`` calls this through ``tools/compute_fbank.py``; the
features are stored with Lhotse's ``LilcomChunkyWriter`` and the cuts file is
written under a temporary name and renamed, so an interrupted run never leaves a
cuts file that points at half-written features.

    >>> spec = FbankJob(recordings="r.jsonl.gz", supervisions="s.jsonl.gz",
    ...                 out="data/fbank/x_cuts_train.jsonl.gz", storage="data/fbank/x_feats_train")
    >>> cuts = compute_features(spec)
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from lhotse import CutSet, LilcomChunkyWriter, RecordingSet, SupervisionSet, load_manifest
from lhotse.qa import fix_manifests, validate_recordings_and_supervisions

from auden.atomic import atomic_file
from auden.audio.features import build_feature_extractor

log = logging.getLogger(__name__)

SPEED_FACTORS: tuple[float, ...] = (0.9, 1.1)
# Fbank runs at several hundred times real time in one process (~20 s for 7000 short
# cuts), while each extra worker costs seconds to start (it re-imports torch and lhotse)
# and competes for the same cores: only big sets get more workers.
MIN_CUTS_PER_JOB = 20000


@dataclass(frozen=True)
class FbankJob:
    """What to compute for one split, and where to put it."""

    recordings: str | Path
    supervisions: str | Path
    out: str | Path  # the cuts manifest, must end in .jsonl.gz (or .jsonl)
    storage: str | Path  # folder (or file stem) for the LilcomChunky feature archive(s)
    kind: str = "fbank"  # "fbank" | "whisper_fbank"
    num_mel_bins: int = 80
    speed_perturb: bool = False
    num_jobs: int = 1
    kaldifeat: bool = False  # compute "fbank" with kaldifeat (C++) instead of Lhotse's torch code


def build_extractor(job: FbankJob):
    """The job's extractor: auden's own (auden.audio.features), or kaldifeat's fbank."""
    if not job.kaldifeat:
        return build_feature_extractor(job.kind, job.num_mel_bins)
    if job.kind != "fbank":
        raise ValueError(f"--kaldifeat computes Kaldi fbank only, not '{job.kind}'")
    if importlib.util.find_spec("kaldifeat") is None:
        raise ValueError("kaldifeat is not installed: build it with `make setup-kaldifeat`")
    from lhotse.features.kaldifeat import KaldifeatFbank, KaldifeatFbankConfig, KaldifeatMelOptions

    return KaldifeatFbank(KaldifeatFbankConfig(mel_opts=KaldifeatMelOptions(num_bins=job.num_mel_bins)))


def load_cuts(recordings: str | Path, supervisions: str | Path) -> CutSet:
    """Pair a recordings and a supervisions manifest into one cut per recording."""
    recs = _load(recordings, RecordingSet)
    sups = _load(supervisions, SupervisionSet)
    recs, sups = fix_manifests(recs, sups)
    if len(recs) == 0:
        raise ValueError(
            f"no recording in '{recordings}' has a supervision in '{supervisions}'"
        )
    validate_recordings_and_supervisions(recs, sups)
    cuts = CutSet.from_manifests(recordings=recs, supervisions=sups)
    # A cut with one supervision is named after it, so ids stay readable and stable.
    return CutSet.from_cuts(
        cut.with_id(cut.supervisions[0].id) if len(cut.supervisions) == 1 else cut
        for cut in cuts
    )


def compute_features(job: FbankJob) -> CutSet:
    """Compute and store features for ``job``; write its cuts file atomically; return the cuts."""
    out = Path(job.out)
    if not (out.name.endswith(".jsonl.gz") or out.name.endswith(".jsonl")):
        raise ValueError(f"--out '{out}' must end in .jsonl.gz or .jsonl")
    cuts = load_cuts(job.recordings, job.supervisions)
    if job.speed_perturb:
        cuts = cuts + sum(
            (cuts.perturb_speed(factor) for factor in SPEED_FACTORS), start=CutSet()
        )
    extractor = build_extractor(job)

    storage = Path(job.storage)
    # Stale archives from an interrupted run would otherwise be appended to or mixed in.
    if storage.is_dir():
        shutil.rmtree(storage)
    for stale in storage.parent.glob(storage.name + ".lca"):
        stale.unlink()
    storage.parent.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)

    num_jobs = max(1, min(job.num_jobs, -(-len(cuts) // MIN_CUTS_PER_JOB)))
    log.info(
        "computing %d-bin %s%s for %d cuts from '%s' -> '%s' (%d jobs)",
        job.num_mel_bins, job.kind, " (kaldifeat)" if job.kaldifeat else "", len(cuts),
        job.recordings, out, num_jobs,
    )
    order = [cut.id for cut in cuts]
    computed = cuts.compute_and_store_features(
        extractor=extractor,
        storage_path=storage,
        num_jobs=num_jobs,
        storage_type=LilcomChunkyWriter,
    )
    # Worker processes return their chunks as they finish; keep the manifest's order.
    by_id = {cut.id: cut for cut in computed}
    cuts = CutSet.from_cuts(by_id[cut_id] for cut_id in order)
    with atomic_file(out) as tmp:
        cuts.to_file(tmp)
    log.info("wrote %d cuts to '%s'", len(cuts), out)
    return CutSet.from_file(out)


def _load(path: str | Path, kind: type):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest '{path}' does not exist")
    manifest = load_manifest(path)
    if not isinstance(manifest, kind):
        raise ValueError(f"manifest '{path}' holds a {type(manifest).__name__}, not a {kind.__name__}")
    return manifest


def _suffix(path: Path) -> str:
    return ".jsonl.gz" if path.name.endswith(".jsonl.gz") else ".jsonl"
