"""Naming the rank that died or hangs, on a real torch.distributed TCPStore (no torchrun).

The end-to-end version (a 2-rank torchrun run whose rank 1 is stopped, killed or
interrupted) is tests/faults/test_rank_death.py."""

from __future__ import annotations

import time

import pytest
import torch.distributed as dist

from auden.training.config import check_config
from auden.training.distributed import (
    DistInfo,
    RankFailure,
    is_collective_failure,
    name_failed_ranks,
)

GLOO_TIMEOUT = RuntimeError(
    "[../third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] "
    "Timed out waiting 5000ms for recv operation to complete"
)


@pytest.fixture
def store():
    return dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)


def test_a_rank_that_does_not_check_in_is_named(store):
    started = time.monotonic()
    failure = name_failed_ranks(DistInfo(rank=0, world_size=3), GLOO_TIMEOUT, 1.0, store)
    waited = time.monotonic() - started
    assert isinstance(failure, RankFailure)
    assert str(failure).startswith("rank 0: ranks 1, 2 died or stopped answering")
    assert "trainer.dist_timeout=1 s" in str(failure) and "Timed out waiting" in str(failure)
    assert 1.0 <= waited < 5.0


def test_ranks_that_check_in_are_not_blamed(store):
    store.set("auden/alive/0/1", "1")  # rank 1 saw the failure too
    failure = name_failed_ranks(DistInfo(rank=0, world_size=3), GLOO_TIMEOUT, 1.0, store)
    assert "rank 0: rank 2 died" in str(failure)
    store.set("auden/alive/0/2", "1")
    failure = name_failed_ranks(DistInfo(rank=0, world_size=3), GLOO_TIMEOUT, 1.0, store)
    assert "although every rank answers" in str(failure)


def test_collective_failures_are_told_from_other_errors():
    assert is_collective_failure(GLOO_TIMEOUT)
    assert is_collective_failure(RuntimeError("[gloo/transport/tcp/pair.cc:553] Connection closed by peer"))
    assert not is_collective_failure(RuntimeError("shape mismatch"))
    assert not is_collective_failure(ValueError("gloo"))


def test_dist_timeout_must_be_positive(training_setup, tmp_path):
    cfg = training_setup.train_config(tmp_path / "exp")
    cfg.trainer.dist_timeout = 0
    with pytest.raises(ValueError, match="trainer.dist_timeout must be > 0"):
        check_config(cfg)
