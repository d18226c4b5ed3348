"""A rank that dies, hangs or raises stops a 2-rank torchrun run with its name, in bounded time.

Without ``trainer.dist_timeout`` the surviving rank of a hung peer would wait in its
collective for gloo's default 30 minutes (nccl: 10).
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
from torchrun_faults import TorchrunRun, wait_for

pytestmark = pytest.mark.slow  # each case is one torchrun run of 15-40 s

TIMEOUT_S = 30  # trainer.dist_timeout here: a loaded 2-core machine lags a rank by seconds


@pytest.fixture
def run(training_setup, tmp_path):
    """A 2-rank run past its first checkpoint (both ranks training); killed at the end."""
    exp = tmp_path / "exp"
    args = training_setup.overrides(exp, num_steps=10000, save_every_n=2, valid_interval=10000)
    run = TorchrunRun.start(args + [f"trainer.dist_timeout={TIMEOUT_S}"], tmp_path / "log")
    try:
        wait_for(lambda: (exp / "checkpoint-2.pt").exists(), run, timeout=1200)
        yield run
    finally:
        run.kill()


def _stopped_within(run: TorchrunRun, since: float) -> float:
    run.wait(timeout=300)
    return time.monotonic() - since


def test_a_hung_rank_is_named_within_the_timeout(run):
    hung = run.rank_pid(1)
    os.kill(hung, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        wait_for(lambda: "rank 1 died or stopped answering" in run.text(), run, timeout=120,
                 poll=0.1)
        detected = time.monotonic() - stopped
    finally:
        os.kill(hung, signal.SIGKILL)  # torchrun's SIGTERM cannot reach a stopped process
        run.wait(timeout=300)
    print(f"hung rank named by rank 0 after {detected:.1f} s (dist_timeout {TIMEOUT_S} s)")
    assert run.proc.returncode != 0
    assert TIMEOUT_S <= detected <= TIMEOUT_S + 30, detected
    line = next(x for x in run.text().splitlines() if "stopped answering" in x)
    assert "rank 0: rank 1 died" in line and f"trainer.dist_timeout={TIMEOUT_S} s" in line


@pytest.mark.parametrize(
    ("how", "sig"),
    [("killed", signal.SIGKILL), ("raising", signal.SIGINT)],  # SIGINT: KeyboardInterrupt
)
def test_a_rank_that_dies_stops_the_run_and_is_named(how, sig, run):
    os.kill(run.rank_pid(1), sig)
    stopped = _stopped_within(run, time.monotonic())
    print(f"{how} rank: run stopped, rank 1 named, after {stopped:.1f} s")
    assert run.proc.returncode != 0
    assert stopped <= TIMEOUT_S + 30, stopped
    root_cause = run.text().split("Root Cause")[-1]
    assert re.search(r"rank\s+: 1 \(local_rank: 1\)", root_cause), run.text()[-2000:]
