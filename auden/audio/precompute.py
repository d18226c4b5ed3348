"""Precompute features for a corpus split: recordings + supervisions -> cuts with features.

Every recipe's ``prepare.sh`` calls this through ``tools/compute_fbank.py``; the
features are stored with Lhotse's ``LilcomChunkyWriter`` and the cuts file is
written under a temporary name and renamed, so an interrupted run never leaves a
cuts file that points at half-written features. A recording that cannot be read, or
whose samples are NaN/Inf or too short for one frame, costs its cut, not the run: it is
left out, counted in the log and listed with the reason in ``<out>.skipped.tsv``
(``strict=True`` stops at the first one instead).

    >>> spec = FbankJob(recordings="r.jsonl.gz", supervisions="s.jsonl.gz",
    ...                 out="data/fbank/x_cuts_train.jsonl.gz", storage="data/fbank/x_feats_train")
    >>> cuts = compute_features(spec)
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lhotse import CutSet, LilcomChunkyWriter, RecordingSet, SupervisionSet, load_manifest
from lhotse.qa import fix_manifests, validate_recordings_and_supervisions
from lhotse.utils import fastcopy
from tqdm import tqdm

from auden.atomic import atomic_file
from auden.audio.features import build_feature_extractor
from auden.audio.io import AudioError, check_waveform, unreadable_reason

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
    strict: bool = False  # stop at the first unusable recording instead of skipping it


def skipped_list_path(out: str | Path) -> Path:
    """Where the cuts left out of ``out`` are listed: ``x_cuts_train.skipped.tsv``."""
    out = Path(out)
    return out.with_name(out.name[: -len(_suffix(out))] + ".skipped.tsv")


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
    all_cuts = list(cuts)
    chunks = [CutSet.from_cuts(all_cuts[i::num_jobs]) for i in range(num_jobs)]
    if num_jobs == 1:
        results = [_extract_chunk(chunks[0], extractor, storage, job.strict, progress=True)]
    else:
        storage.mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor(num_jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [
                pool.submit(_extract_chunk, chunk, extractor, storage / f"feats-{i}", job.strict)
                for i, chunk in enumerate(chunks)
            ]
            results = [f.result() for f in futures]
    # Workers take every n-th cut; keep the manifest's order.
    by_id = {cut.id: cut for done, _ in results for cut in done}
    skipped = sorted(bad for _, chunk_bad in results for bad in chunk_bad)
    _write_skipped(skipped_list_path(out), skipped, len(cuts))
    if not by_id:
        raise ValueError(
            f"none of the {len(cuts)} recordings in '{job.recordings}' could be used: "
            f"see '{skipped_list_path(out)}'"
        )
    cuts = CutSet.from_cuts(by_id[cut.id] for cut in all_cuts if cut.id in by_id)
    with atomic_file(out) as tmp:
        cuts.to_file(tmp)
    log.info("wrote %d cuts to '%s'; skipped %d whose audio was unusable%s", len(by_id), out,
             len(skipped), f" (listed in '{skipped_list_path(out)}')" if skipped else "")
    return CutSet.from_file(out)


def _extract_chunk(
    cuts: CutSet, extractor, storage_path: Path, strict: bool, progress: bool = False
) -> tuple[list, list[tuple[str, str]]]:
    """Features for each usable cut into one archive; ``(cut id, reason)`` for the rest.

    Only reading and checking the audio is guarded: an extractor that fails on good audio
    is a bug to see, not a recording to skip. Top-level so that worker processes can run it.
    """
    done, bad = [], []
    with LilcomChunkyWriter(storage_path) as storage:
        for cut in tqdm(cuts, desc="fbank", disable=not progress, mininterval=5):
            try:
                samples = cut.load_audio()
                check_waveform(samples, f"cut '{cut.id}'", cut.sampling_rate)
            except Exception as e:  # any backend's error: the file, not the code, is at fault
                reason = str(e) if isinstance(e, AudioError) else _read_error(cut, e)
                if strict:
                    raise AudioError(reason) from e
                log.warning("skipping %s", reason)
                bad.append((cut.id, reason))
                continue
            features = extractor.extract_from_samples_and_store(
                samples=samples, storage=storage, sampling_rate=cut.sampling_rate,
                offset=cut.start, channel=cut.channel,
            )
            done.append(fastcopy(cut, features=features))
    return done, bad


def _read_error(cut, e: BaseException) -> str:
    """``cut 'x': cannot read audio file 'x.wav': the file is empty (0 bytes)``, say."""
    sources = cut.recording.sources if cut.has_recording else []
    if len(sources) == 1 and sources[0].type == "file":
        path = sources[0].source
        return f"cut '{cut.id}': cannot read audio file '{path}': {unreadable_reason(e, path)}"
    first = (str(e).strip().splitlines() or [""])[0]
    return f"cut '{cut.id}': cannot read its audio: {type(e).__name__}: {first}"


def _write_skipped(path: Path, skipped: list[tuple[str, str]], total: int) -> None:
    """List the skipped cuts beside the cuts file (an old list from a rerun is removed)."""
    if not skipped:
        path.unlink(missing_ok=True)
        return
    log.warning("%d of %d recordings could not be used; listed in '%s'", len(skipped), total, path)
    with atomic_file(path) as tmp:
        tmp.write_text("".join(f"{cut_id}\t{' '.join(why.split())}\n" for cut_id, why in skipped))


def _load(path: str | Path, kind: type):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest '{path}' does not exist")
    manifest = load_manifest(path)
    if len(manifest) == 0:  # Lhotse reads any empty manifest back as an empty CutSet
        raise ValueError(f"manifest '{path}' is empty (no {kind.__name__[:-3].lower()}s)")
    if not isinstance(manifest, kind):
        raise ValueError(f"manifest '{path}' holds a {type(manifest).__name__}, not a {kind.__name__}")
    return manifest


def _suffix(path: Path) -> str:
    return ".jsonl.gz" if path.name.endswith(".jsonl.gz") else ".jsonl"
