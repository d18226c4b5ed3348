"""tools/compute_fbank.py: the feature step every recipe's prepare.sh runs.

The first test runs it as its own process, as prepare.sh does; the others call its
main() in this process, which tests the same code without an interpreter start-up each.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from tinycorpus import BAD_RECORDINGS, write_bad_recordings

from auden.audio import precompute
from auden.audio.precompute import FbankJob, compute_features

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "compute_fbank.py"


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    recs, sups = [], []
    for i, seconds in enumerate((0.73, 1.2, 2.05)):
        wav = root / f"utt{i}.wav"
        samples = (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
        sf.write(wav, samples, 16000)
        rec = Recording.from_file(wav, recording_id=f"utt{i}")
        recs.append(rec)
        sups.append(
            SupervisionSegment(
                id=f"utt{i}",
                recording_id=f"utt{i}",
                start=0.0,
                duration=rec.duration,
                text=f"word {i}",
                custom={"answer": str(i)},
            )
        )
    rec_path, sup_path = root / "recs.jsonl.gz", root / "sups.jsonl.gz"
    RecordingSet.from_recordings(recs).to_file(rec_path)
    SupervisionSet.from_segments(sups).to_file(sup_path)
    return rec_path, sup_path


def run_tool(*args: str) -> subprocess.CompletedProcess:
    """The tool as prepare.sh runs it: its own process."""
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def tool(caplog, monkeypatch):
    """The tool's main() in this process (no interpreter start-up): returns (exit code, log)."""
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    spec = importlib.util.spec_from_file_location("compute_fbank_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()

    def run(*args: str) -> tuple[int, str]:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            code = module.main(list(args))
        torch.set_num_threads(threads)
        return code, caplog.text

    return run


def test_cuts_get_80_bin_fbank_whose_frames_match_the_duration(manifests, tmp_path):
    recs, sups = manifests
    out = tmp_path / "fbank" / "x_cuts_train.jsonl.gz"
    res = run_tool(
        "--recordings",
        str(recs),
        "--supervisions",
        str(sups),
        "--out",
        str(out),
        "--storage",
        str(tmp_path / "fbank" / "x_feats_train"),
    )
    assert res.returncode == 0, res.stderr
    cuts = CutSet.from_file(out)
    assert sorted(c.id for c in cuts) == ["utt0", "utt1", "utt2"]
    for cut in cuts:
        feats = cut.load_features()
        assert feats.shape == (cut.num_frames, 80)
        assert abs(cut.num_frames - round(cut.duration * 100)) <= 1
        assert cut.supervisions[0].custom["answer"] == cut.id[-1]
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name]


def test_whisper_fbank_with_128_bins(manifests, tmp_path, tool):
    recs, sups = manifests
    out = tmp_path / "w_cuts.jsonl.gz"
    code, log = tool(
        "--recordings",
        str(recs),
        "--supervisions",
        str(sups),
        "--out",
        str(out),
        "--storage",
        str(tmp_path / "w_feats"),
        "--whisper-fbank",
        "--num-mel-bins",
        "128",
    )
    assert code == 0, log
    cuts = CutSet.from_file(out)
    assert len(cuts) == 3
    assert all(c.load_features().shape == (c.num_frames, 128) for c in cuts)


def test_two_worker_processes_give_the_same_features_as_one(manifests, tmp_path, monkeypatch):
    recs, sups = manifests
    one = compute_features(FbankJob(recs, sups, tmp_path / "one.jsonl.gz", tmp_path / "one"))
    monkeypatch.setattr(precompute, "MIN_CUTS_PER_JOB", 1)  # force a pool for 3 cuts
    two = compute_features(
        FbankJob(recs, sups, tmp_path / "two.jsonl.gz", tmp_path / "two", num_jobs=2)
    )
    assert [c.id for c in two] == [c.id for c in one]
    for a, b in zip(one, two):
        np.testing.assert_allclose(a.load_features(), b.load_features(), atol=1e-5)


def test_speed_perturb_adds_slower_and_faster_copies(manifests, tmp_path, tool):
    recs, sups = manifests
    out = tmp_path / "sp_cuts.jsonl.gz"
    code, log = tool(
        "--recordings",
        str(recs),
        "--supervisions",
        str(sups),
        "--out",
        str(out),
        "--storage",
        str(tmp_path / "sp_feats"),
        "--speed-perturb",
    )
    assert code == 0, log
    cuts = {c.id: c for c in CutSet.from_file(out)}
    assert len(cuts) == 9
    slow, fast = cuts["utt2_sp0.9"], cuts["utt2_sp1.1"]
    assert slow.duration > cuts["utt2"].duration > fast.duration
    assert slow.load_features().shape[0] == slow.num_frames


def test_missing_manifest_is_an_error_naming_the_file(manifests, tmp_path, tool):
    _, sups = manifests
    missing = tmp_path / "nope_recordings.jsonl.gz"
    code, log = tool(
        "--recordings",
        str(missing),
        "--supervisions",
        str(sups),
        "--out",
        str(tmp_path / "c.jsonl.gz"),
        "--storage",
        str(tmp_path / "f"),
    )
    assert code != 0
    assert str(missing) in log


def test_swapped_manifests_are_an_error_naming_the_file(manifests, tmp_path, tool):
    recs, sups = manifests
    code, log = tool(
        "--recordings",
        str(sups),
        "--supervisions",
        str(recs),
        "--out",
        str(tmp_path / "c.jsonl.gz"),
        "--storage",
        str(tmp_path / "f"),
    )
    assert code != 0
    assert str(sups) in log and "SupervisionSet" in log


def test_several_splits_in_one_run_fill_the_split_into_the_paths(manifests, tmp_path, tool):
    recs, sups = manifests
    for split in ("a", "b"):
        (tmp_path / f"recs_{split}.jsonl.gz").symlink_to(recs)
        (tmp_path / f"sups_{split}.jsonl.gz").symlink_to(sups)
    code, log = tool("--splits", "a", "b",
                   "--recordings", str(tmp_path / "recs_{split}.jsonl.gz"),
                   "--supervisions", str(tmp_path / "sups_{split}.jsonl.gz"),
                   "--out", str(tmp_path / "cuts_{split}.jsonl.gz"),
                   "--storage", str(tmp_path / "feats_{split}"))
    assert code == 0, log
    for split in ("a", "b"):
        cuts = CutSet.from_file(tmp_path / f"cuts_{split}.jsonl.gz")
        assert len(cuts) == 3 and f"feats_{split}" in cuts[0].features.storage_path


def test_split_placeholder_without_splits_is_an_error(manifests, tmp_path, tool):
    recs, sups = manifests
    code, log = tool("--recordings", str(recs), "--supervisions", str(sups),
                   "--out", str(tmp_path / "cuts_{split}.jsonl.gz"), "--storage", str(tmp_path / "f"))
    assert code != 0 and "--out" in log and "{split}" in log


def test_kaldifeat_backend_matches_lhotse_fbank_or_says_how_to_install_it(
    manifests, tmp_path, tool
):
    recs, sups = manifests
    args = ["--recordings", str(recs), "--supervisions", str(sups), "--kaldifeat"]
    code, log = tool(*args, "--out", str(tmp_path / "k.jsonl.gz"), "--storage", str(tmp_path / "k"))
    if importlib.util.find_spec("kaldifeat") is None:
        assert code != 0 and "make setup-kaldifeat" in log
        return
    assert code == 0, log
    ref = compute_features(FbankJob(recs, sups, tmp_path / "r.jsonl.gz", tmp_path / "r"))
    for a, b in zip(CutSet.from_file(tmp_path / "k.jsonl.gz"), ref):
        assert a.num_frames == b.num_frames
        np.testing.assert_allclose(a.load_features(), b.load_features(), atol=0.05)


@pytest.mark.parametrize("num_jobs", [1, 2])
def test_unusable_recordings_are_skipped_counted_and_listed_by_cut_id(
    tmp_path, tool, monkeypatch, num_jobs
):
    recs, sups = write_bad_recordings(tmp_path)
    monkeypatch.setattr(precompute, "MIN_CUTS_PER_JOB", 1)  # two workers when asked
    out = tmp_path / "fbank" / "x_cuts_train.jsonl.gz"
    code, log = tool("--recordings", str(recs), "--supervisions", str(sups), "--out", str(out),
                     "--storage", str(tmp_path / "fbank" / "x_feats"), "--num-jobs", str(num_jobs))
    assert code == 0, log
    cuts = CutSet.from_file(out)
    assert [c.id for c in cuts] == ["good0", "good1"]
    assert all(np.isfinite(c.load_features()).all() for c in cuts)
    listed = (tmp_path / "fbank" / "x_cuts_train.skipped.tsv").read_text().splitlines()
    reasons = dict(line.split("\t", 1) for line in listed)
    assert sorted(reasons) == sorted(BAD_RECORDINGS)
    assert "NaN or Inf" in reasons["nan"] and "gone.wav" in reasons["gone"]
    assert "wrote 2 cuts" in log and f"skipped {len(BAD_RECORDINGS)}" in log


def test_strict_stops_at_the_first_unusable_recording_naming_its_cut(
    tmp_path, tool
):
    recs, sups = write_bad_recordings(tmp_path)
    out = tmp_path / "s_cuts.jsonl.gz"
    code, log = tool("--recordings", str(recs), "--supervisions", str(sups), "--out", str(out),
                     "--storage", str(tmp_path / "s_feats"), "--strict")
    assert code != 0 and "cut 'emptied'" in log and "empty" in log
    assert not out.exists()


def test_a_rerun_without_bad_recordings_removes_the_old_skipped_list(manifests, tmp_path, tool):
    recs, sups = manifests
    out = tmp_path / "r_cuts.jsonl.gz"
    stale = precompute.skipped_list_path(out)
    stale.write_text("old\tfrom an earlier run\n")
    code, log = tool("--recordings", str(recs), "--supervisions", str(sups), "--out", str(out),
                     "--storage", str(tmp_path / "r_feats"))
    assert code == 0, log
    assert not stale.exists() and "skipped 0" in log

