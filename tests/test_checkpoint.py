"""Checkpoint files: atomic writes that survive SIGKILL, pruning, trainable-only weights, RNG."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from auden.checkpoint import (
    find_checkpoints,
    iter_checkpoint_path,
    load_checkpoint,
    remove_old_checkpoints,
    remove_temp_files,
    save_checkpoint,
    trainable_state_dict,
)
from auden.training.rng import capture_rng_state, restore_rng_state

WRITER = textwrap.dedent(
    """
    import sys, torch
    from auden.checkpoint import save_checkpoint
    big = {f"w{i}": torch.randn(1024, 1024) for i in range(48)}  # ~200 MB
    print("writing", flush=True)
    while True:  # rewrite until killed, so the kill always lands in a write
        save_checkpoint({"model": big, "batch_idx_train": 30}, sys.argv[1])
    """
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_sigkill_during_a_checkpoint_write_leaves_earlier_checkpoints_loadable(tmp_path):
    torch.manual_seed(0)
    for step in (10, 20):
        save_checkpoint({"model": {"w": torch.randn(3)}, "batch_idx_train": step},
                        iter_checkpoint_path(tmp_path, step))
    target = iter_checkpoint_path(tmp_path, 30)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size > 0 for p in tmp_path.glob(".tmp-*")):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.002)
        if target.exists():  # a first write finished: kill the second one instead
            target.unlink()
            while not target.exists() and not any(tmp_path.glob(".tmp-*")):
                time.sleep(0.002)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # A file under a checkpoint name is either absent or complete.
    if target.exists():
        assert load_checkpoint(target)["batch_idx_train"] == 30
    assert [p.name for p in find_checkpoints(tmp_path)][-2:] == ["checkpoint-20.pt",
                                                                 "checkpoint-10.pt"]
    for step in (10, 20):
        assert load_checkpoint(iter_checkpoint_path(tmp_path, step))["batch_idx_train"] == step
    assert len(remove_temp_files(tmp_path)) == 1  # the partial write, cleaned at the next start
    assert not list(tmp_path.glob(".tmp-*"))


def test_keep_last_k_removes_all_but_the_newest_iteration_checkpoints(tmp_path):
    for step in (5, 10, 15, 20, 100):
        save_checkpoint({"batch_idx_train": step}, iter_checkpoint_path(tmp_path, step))
    save_checkpoint({"epoch": 1}, tmp_path / "epoch-1.pt")
    removed = remove_old_checkpoints(tmp_path, keep_last_k=2)
    assert sorted(p.name for p in removed) == ["checkpoint-10.pt", "checkpoint-15.pt",
                                               "checkpoint-5.pt"]
    assert [p.name for p in find_checkpoints(tmp_path)] == ["checkpoint-100.pt",
                                                            "checkpoint-20.pt"]
    assert (tmp_path / "epoch-1.pt").is_file()  # epoch checkpoints are never pruned


def test_loading_is_weights_only_and_names_a_bad_file(tmp_path):
    path = tmp_path / "checkpoint-1.pt"
    torch.save({"model": {}, "callable": Path("/etc")}, path)  # not a plain value
    with pytest.raises(ValueError, match="checkpoint-1.pt"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="checkpoint-2.pt"):
        load_checkpoint(tmp_path / "checkpoint-2.pt")


class _Frozen(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.big = nn.Linear(8, 8)
        self.register_buffer("stats", torch.zeros(8))
        self.requires_grad_(False)


class _Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.llm = _Frozen()
        self.projector = nn.Linear(8, 4)
        self.norm = nn.BatchNorm1d(4)


def test_only_trainable_weights_and_their_buffers_are_saved():
    sd = trainable_state_dict(_Model())
    assert sorted(sd) == sorted([
        "projector.weight", "projector.bias", "norm.weight", "norm.bias",
        "norm.running_mean", "norm.running_var", "norm.num_batches_tracked",
    ])


def test_frozen_llm_of_an_audio_llm_is_not_in_its_checkpoint(tmp_path):
    from tiny_audio_llm import make_tiny_llm, tiny_config

    from auden.auto.auto_model import AutoModel

    torch.manual_seed(0)
    model = AutoModel.from_config(tiny_config(make_tiny_llm(tmp_path / "llm")))
    sd = trainable_state_dict(model)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and any(n.startswith("llm.") for n in frozen)
    assert not frozen & set(sd)
    assert sd and all(p.requires_grad for n, p in model.named_parameters() if n in sd)


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    save_checkpoint({"rng": capture_rng_state()}, tmp_path / "c.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
