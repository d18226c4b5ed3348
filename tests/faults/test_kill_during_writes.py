"""kill -9 while a file is being written, then rerun: the rerun completes and no
half-written file is ever picked up. `auden export` with averaging (the same
resolve-and-average code evaluate.py runs) and the feature stage of prepare.sh
(tools/compute_fbank.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lhotse import CutSet
from tiny_audio_llm import make_tiny_llm, tiny_config

from auden.auto.auto_config import config_to_dict
from auden.auto.auto_model import AutoModel
from auden.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # a few short subprocesses each

REPO = Path(__file__).resolve().parents[2]


def _start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _kill_when(proc: subprocess.Popen, seen, timeout: float = 300) -> bool:
    """SIGKILL ``proc`` as soon as ``seen()`` is true; False if it finished first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if seen():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.001)
    proc.wait()
    return False


@pytest.fixture(scope="module")
def exp_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill_export")
    torch.manual_seed(0)
    config = tiny_config(make_tiny_llm(root / "llm"))
    config.llm.frozen = False  # a bigger checkpoint and folder: writes take a while
    model = AutoModel.from_config(config)
    exp = root / "exp"
    exp.mkdir()
    for step in (2, 4):
        state = {k: v + step for k, v in model.trainable_state_dict().items()}
        torch.save({"model": state, "batch_idx_train": step, "epoch": 1,
                    "config": {"model": config_to_dict(model.config)}},
                   exp / f"checkpoint-{step}.pt")
    return exp


@pytest.mark.parametrize("moment", ["averaging", "export"])
def test_kill_during_export_then_rerun(moment, exp_dir, tmp_path):
    out = tmp_path / "export"
    averaged = exp_dir / "averaged-iter-4-avg-2.pt"
    averaged.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "auden.cli", "export", str(exp_dir), "--iter", "4",
           "--avg", "2", "--out", str(out)]
    if moment == "averaging":
        seen = lambda: any(exp_dir.glob(".tmp-averaged-*"))  # noqa: E731
    else:
        seen = lambda: any(tmp_path.glob(".tmp-export*"))  # noqa: E731
    killed = _kill_when(_start(cmd), seen)
    # whatever the kill left under the final names is complete
    if averaged.exists():
        assert load_checkpoint(averaged)["averaged_from"]["method"] == "mean"
    if out.exists():
        AutoModel.from_pretrained(out)
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    model = AutoModel.from_pretrained(out)
    mean = load_checkpoint(averaged)["model"]
    for name, value in model.trainable_state_dict().items():
        torch.testing.assert_close(value, mean[name])
    print(f"killed mid-{moment}: {killed}")  # a leftover .tmp-* file is never read


def test_kill_during_feature_extraction_then_rerun(tiny_corpus, tmp_path):
    out = tmp_path / "fbank" / "cuts.jsonl.gz"
    storage = tmp_path / "fbank" / "feats"
    cmd = [sys.executable, "tools/compute_fbank.py", "--recordings", str(tiny_corpus.recordings),
           "--supervisions", str(tiny_corpus.supervisions), "--out", str(out),
           "--storage", str(storage), "--speed-perturb"]
    killed = _kill_when(_start(cmd), lambda: storage.exists() or storage.with_suffix(".lca")
                        .exists() or any(storage.parent.glob("*.lca")))
    assert killed, "extraction finished before it could be killed"
    assert not out.exists()  # no cuts file that points at half-written features
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    cuts = CutSet.from_file(out)
    assert len(cuts) == 3 * len(tiny_corpus.cut_ids)
    for cut in cuts:
        assert cut.load_features().shape[0] > 0
