"""Two torchrun launchers on loopback act as two nodes, reading Lhotse Shar shards:

    torchrun --nnodes 2 --node_rank R --nproc_per_node 2 --rdzv-backend c10d \\
        --rdzv-endpoint 127.0.0.1:PORT train.py ...

Train, checkpoint, kill one launcher, restart both: the same weights as a run that was
never interrupted (here four ranks on one launcher: the same ranks, the same data).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_train_torchrun import RECIPE, VENV_BIN, _env, _max_diff, _wait_for
from tinycorpus import write_data_config
from torch.nn.parallel import DistributedDataParallel

from auden.checkpoint import load_checkpoint
from auden.data.shar import export_shar
from auden.training.distributed import allreduce_each_gradient


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        # Declared in another order than used: DDP's rebuilt buckets differ from its first.
        self.out, self.mid, self.inp = (torch.nn.Linear(64, 1), torch.nn.Linear(64, 64),
                                        torch.nn.Linear(8, 64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.mid(torch.tanh(self.inp(x))))).pow(2).mean()


def _gradients(ddp: DistributedDataParallel, rank: int, step: int) -> list[torch.Tensor]:
    ddp.zero_grad(set_to_none=True)
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(10 * step + rank))
    ddp(x * 10.0**rank).backward()  # ranks of other magnitudes: sums that round by order
    return [p.grad.clone() for p in ddp.module.parameters()]


def _fresh_vs_running_ddp(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=4)
    try:
        models = []
        for _ in range(2):
            ddp = DistributedDataParallel(_Net(), bucket_cap_mb=0.01)
            ddp.register_comm_hook(None, allreduce_each_gradient)
            models.append(ddp)
        running = [_gradients(models[0], rank, step) for step in range(3)][-1]
        fresh = _gradients(models[1], rank, 2)  # a resumed run's first step
        if rank == 0:
            torch.save({"running": running, "fresh": fresh}, out)
    finally:
        dist.destroy_process_group()


def test_a_resumed_runs_first_step_sums_gradients_as_the_running_one_does(tmp_path):
    """DDP rebuilds its buckets after its first step; the gradients must not notice."""
    out = tmp_path / "grads.pt"
    mp.spawn(_fresh_vs_running_ddp, args=(_free_port(), str(out)), nprocs=4)
    grads = torch.load(out)
    for running, fresh in zip(grads["running"], grads["fresh"]):
        assert torch.equal(running, fresh)


def _launch(args: list[str], log: Path) -> subprocess.Popen:
    """torchrun in a session of its own (so that its workers die with it), output to ``log``."""
    with open(log, "w") as out:
        return subprocess.Popen([str(VENV_BIN / "torchrun"), *args], cwd=RECIPE, env=_env(),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _node(node_rank: int, port: int, args: list[str], log: Path) -> subprocess.Popen:
    return _launch([
        "--nnodes=2", f"--node_rank={node_rank}", "--nproc_per_node=2", "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=auden-two-nodes", "train.py", *args,
    ], log)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _finish(procs: list[subprocess.Popen], logs: list[Path], timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    try:
        for proc, log in zip(procs, logs):
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            assert proc.returncode == 0, log.read_text()[-3000:]
    finally:
        for proc in procs:
            _kill(proc)


@pytest.mark.slow  # three 4-rank runs: 297 s at load 13 on 2 cores (mostly 4-rank start-ups)
def test_two_node_run_killed_and_restarted_resumes_to_the_uninterrupted_weights(
    training_setup, tiny_corpus, tmp_path
):
    shar = tmp_path / "shar"
    export_shar(tiny_corpus.cuts, shar, shard_size=5)  # 5 shards for 4 readers
    data_config = write_data_config(tmp_path / "train.yaml", [
        {"shar_dir": str(shar), "task": "transcribe", "weight": 1},
    ])
    # Killed after checkpoint n, compared at `last`: the gap leaves the kill time to land
    # on an idle machine, where a step of this tiny model takes milliseconds (with `2 * n`
    # the whole run once finished before the kill).
    n, last = 3, 60

    def args(exp, **kw):
        return training_setup.overrides(
            exp, num_steps=last, save_every_n=n, keep_last_k=last, valid_interval=100, **kw
        ) + [f"data.train_data_config={data_config}", "data.segment_cuts=6",
             "data.cuts_per_epoch=96"]

    full, part = tmp_path / "full", tmp_path / "part"
    log = [tmp_path / "one.log"]
    _finish([_launch(["--standalone", "--nproc_per_node=4", "train.py", *args(full)], log[0])],
            log)

    port = _free_port()
    # One dataloader worker per rank slows the run down (the readers stay 4 x 1) so that
    # it is killed between the two checkpoints.
    slow = ["data.num_workers=1"]
    logs = [tmp_path / f"node{r}.log" for r in (0, 1)]
    nodes = [_node(r, port, args(part) + slow, logs[r]) for r in (0, 1)]
    try:
        _wait_for(part / f"checkpoint-{n}.pt", nodes[0], timeout=900)
        _kill(nodes[1])  # one node dies; the other's ranks lose their peers
        try:
            nodes[0].wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    finally:
        for node in nodes:
            _kill(node)
    # On a fast machine the kill can land after the run ended: the checkpoints after n go,
    # so the restarted launchers must still redo the steps from checkpoint n.
    for later in range(2 * n, last + 1, n):
        (part / f"checkpoint-{later}.pt").unlink(missing_ok=True)

    port = _free_port()
    logs = [tmp_path / f"resumed{r}.log" for r in (0, 1)]
    _finish([_node(r, port, args(part, start_batch=n), logs[r]) for r in (0, 1)], logs)
    a = load_checkpoint(full / f"checkpoint-{last}.pt")
    b = load_checkpoint(part / f"checkpoint-{last}.pt")
    assert b["sampler"]["world_size"] == 4 and len(b["sampler"]["readers"]) == 4
    diffs = _max_diff(a["model"], b["model"]), _max_diff(a["model_avg"], b["model_avg"])
    assert max(diffs) <= 1e-6, f"weights, running average differ by {diffs}"
    assert a["last_cut_ids"] == b["last_cut_ids"]
