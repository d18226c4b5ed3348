"""Bad recordings and manifests through tools/compute_fbank.py, the feature step of every
recipe's prepare.sh: a recording that cannot give features costs its cut (skipped, listed
by id with the reason, counted in the summary), not the run. Rows of the bad-input
catalogue (``tests/bad_inputs.py``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bad_inputs import record
from lhotse import CutSet, RecordingSet
from tinycorpus import BAD_RECORDINGS, write_bad_recordings

from auden.audio.precompute import skipped_list_path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "compute_fbank.py"
ENTRY = "compute_fbank.py (prepare.sh)"


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=300
    )


def test_unusable_recordings_cost_their_cut_and_are_listed(tmp_path):
    recs, sups = write_bad_recordings(tmp_path / "corpus")
    out = tmp_path / "fbank" / "x_cuts_train.jsonl.gz"
    res = run_tool("--recordings", recs, "--supervisions", sups, "--out", out,
                   "--storage", tmp_path / "fbank" / "x_feats_train")
    assert res.returncode == 0, res.stderr
    assert [c.id for c in CutSet.from_file(out)] == ["good0", "good1"]
    listed = skipped_list_path(out).read_text().splitlines()
    reasons = dict(line.split("\t", 1) for line in listed)
    assert sorted(reasons) == sorted(BAD_RECORDINGS)
    summary = next(line for line in res.stderr.splitlines() if "wrote 2 cuts" in line)
    assert f"skipped {len(BAD_RECORDINGS)}" in summary and skipped_list_path(out).name in summary
    for cut_id, case in BAD_RECORDINGS.items():
        assert f"cut '{cut_id}'" in reasons[cut_id]
        record(case, ENTRY, "cut skipped, listed by id with the reason, counted",
               f"x_cuts_train.skipped.tsv: {cut_id}\t{reasons[cut_id]}")
    record("unusable recordings (summary)", ENTRY, "the run's summary counts the skips",
           summary.split("] ", 1)[-1])


def test_an_empty_manifest_is_called_empty(tmp_path):
    empty = tmp_path / "empty_recordings.jsonl.gz"
    RecordingSet().to_file(empty)
    sups = tmp_path / "sups.jsonl.gz"
    sups.write_bytes(empty.read_bytes())
    res = run_tool("--recordings", empty, "--supervisions", sups,
                   "--out", tmp_path / "c.jsonl.gz", "--storage", tmp_path / "f")
    assert res.returncode != 0
    assert f"manifest '{empty}' is empty (no recordings)" in res.stderr
    record("empty manifest", ENTRY, "error naming the manifest",
           res.stderr.strip().splitlines()[-1].split("] ", 1)[-1])
