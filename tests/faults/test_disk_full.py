"""A checkpoint save that hits a full disk (here a file-size limit, ``ulimit -f``) stops
training with an error naming the file, and leaves the previous checkpoint intact."""

from __future__ import annotations

import subprocess
import sys

import pytest
from torchrun_faults import RECIPE, env

from auden.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # two train.py runs: ~20-60 s


def _train(args: list[str], limit_kb: int | None = None) -> subprocess.CompletedProcess:
    cmd = " ".join([sys.executable, "train.py", *args])
    if limit_kb is not None:
        cmd = f"ulimit -f {limit_kb} && {cmd}"  # files past the limit fail with EFBIG
    return subprocess.run(["bash", "-c", cmd], cwd=RECIPE, env=env(), capture_output=True,
                          text=True, timeout=600)


def test_a_full_disk_during_a_checkpoint_save_is_named_and_keeps_the_previous(
    training_setup, tmp_path
):
    exp = tmp_path / "exp"
    first = _train(training_setup.overrides(exp, num_steps=2, save_every_n=2))
    assert first.returncode == 0, first.stderr[-2000:]
    previous = exp / "checkpoint-2.pt"
    before = previous.read_bytes()
    limit_kb = len(before) // 2048  # half a checkpoint: the next save cannot fit
    resumed = _train(
        training_setup.overrides(exp, num_steps=4, save_every_n=2, start_batch=2), limit_kb
    )
    error = next((line for line in resumed.stderr.splitlines()
                  if "cannot write checkpoint" in line), resumed.stderr[-500:])
    assert resumed.returncode != 0
    assert f"cannot write checkpoint '{exp / 'checkpoint-4.pt'}'" in error
    assert previous.read_bytes() == before and load_checkpoint(previous)["batch_idx_train"] == 2
    assert not (exp / "checkpoint-4.pt").exists()
    assert not list(exp.glob(".tmp-*"))  # no half-written file for a later run to pick up
