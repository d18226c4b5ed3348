"""Start mini_en's train.py under a 2-rank torchrun and hurt it: kill, stop or interrupt a rank.

    run = TorchrunRun.start(training_setup.overrides(exp, num_steps=8), log=tmp_path / "log")
    pid = run.rank_pid(1)            # the worker that torchrun started with RANK=1
    os.kill(pid, signal.SIGSTOP)
    run.wait(timeout=120)

Ranks are found by their ``RANK`` environment variable under torchrun's process, so the
test signals exactly the process it means (never by name).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[2] / "egs" / "mini_en"
VENV_BIN = Path(sys.executable).parent


def torchrun_command(args: list[str]) -> list[str]:
    return [str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "train.py", *args]


def env() -> dict:
    # Unbuffered: Hydra logs to stdout, which a file would hold back in blocks, and the
    # harness reads the log to know which step the run is at.
    return {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0",
            "PYTHONUNBUFFERED": "1"}


@dataclass
class TorchrunRun:
    proc: subprocess.Popen
    log: Path
    started: float

    @classmethod
    def start(cls, args: list[str], log: Path) -> TorchrunRun:
        """torchrun in its own session, stdout and stderr into ``log``."""
        handle = open(log, "w")  # noqa: SIM115 (kept open for the child's lifetime)
        proc = subprocess.Popen(
            torchrun_command(args), cwd=RECIPE, env=env(), stdout=handle,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        handle.close()
        return cls(proc, log, time.monotonic())

    def rank_pid(self, rank: int, timeout: float = 120) -> int:
        """The pid of the worker with ``RANK=rank`` (waits until torchrun has started it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pid in _children(self.proc.pid):  # not their data-loader workers
                if _environ(pid).get("RANK") == str(rank) and _is_train_py(pid):
                    return pid
            if self.proc.poll() is not None:
                raise AssertionError(f"torchrun exited ({self.proc.returncode}): {self.text()}")
            time.sleep(0.05)
        raise AssertionError(f"no rank {rank} worker after {timeout} s")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL torchrun and every process under it, by pid.

        Killing torchrun's process group is not enough: torchrun starts each worker in a
        session of its own, and a worker whose torchrun died trains on as an orphan.
        """
        victims = [self.proc.pid, *_descendants(self.proc.pid)]
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        for pid in victims[1:]:  # not our children: wait until they are really gone
            _wait_gone(pid)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for(predicate, run: TorchrunRun, timeout: float = 180, poll: float = 0.01) -> None:
    """Poll until ``predicate()`` is true; fail if the run exits first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if run.proc.poll() is not None:
            raise AssertionError(f"training exited ({run.proc.returncode}) too early")
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout} s")
        time.sleep(poll)


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        children = _children(todo.pop())
        out += children
        todo += children
    return out


def _wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state == "Z":  # a zombie has stopped running: it only waits to be reaped
            return
        time.sleep(0.01)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _environ(pid: int) -> dict:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _is_train_py(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(b"train.py" in part for part in cmdline)
