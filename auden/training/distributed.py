"""torch.distributed set-up for torchrun: gloo on CPUs, nccl on GPUs; or a single process.

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them training runs in
one process with no process group at all.

    dist_info = init_distributed()
    ... all_reduce_sum(tensor) ... gather_objects(obj) ...
    cleanup_distributed()
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


class RankFailure(RuntimeError):
    """Another rank died or stopped answering; the message names it."""


def init_distributed(timeout_s: float = 300.0) -> DistInfo:
    """Join torchrun's process group; a collective waits ``timeout_s`` for the other ranks.

    The backends' own defaults (10 min for nccl, 30 min for gloo) would leave the
    surviving ranks hanging that long when one rank stops (``trainer.dist_timeout``).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend=backend,
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
        logger.info("rank %d/%d: process group up (%s) on %s", rank, world_size, backend, device)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few numbers over ranks (float64, so counts stay exact)."""
    if not dist.is_initialized():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Average ``.grad`` over ranks by hand, for gradients DDP did not sync (``no_sync``)."""
    if not dist.is_initialized():
        return
    world_size = dist.get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world_size)


def allreduce_each_gradient(group, bucket):  # no annotations: DDP checks them as classes
    """A DDP communication hook: average every gradient in its own all-reduce.

    DDP's default hook all-reduces whole buckets, and rebuilds its buckets after the first
    step of every process: a gradient's place in the bucket then moves, which changes the
    order in which the ring algorithm adds the ranks' values (with more than two ranks).
    A run resumed from a checkpoint would take its first step with other buckets than the
    uninterrupted run, and differ by rounding. Reduced one by one, a gradient's sum
    depends only on its own shape and the ranks, never on how DDP buckets it.

        ddp_model.register_comm_hook(None, allreduce_each_gradient)
    """
    world_size = dist.get_world_size(group)
    futures = [
        dist.all_reduce(g.div_(world_size), group=group, async_op=True).get_future()
        for g in bucket.gradients()
    ]
    buffer = bucket.buffer()
    return torch.futures.collect_all(futures).then(lambda _: buffer)


def all_ranks_true(flag: bool, device: torch.device) -> bool:
    """True only if ``flag`` is true on every rank (e.g. "my loss is finite")."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def any_rank_true(flag: bool, device: torch.device) -> bool:
    """True if ``flag`` is true on some rank (e.g. "I still have a batch")."""
    return not all_ranks_true(not flag, device)


def gather_objects(obj) -> list:
    """Every rank's ``obj``, in rank order (on every rank)."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def is_collective_failure(error: BaseException) -> bool:
    """Whether ``error`` came from a collective whose peers vanished or timed out."""
    if isinstance(error, dist.DistError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        mark in text for mark in ("gloo", "Gloo", "NCCL", "Connection closed", "Timed out")
    )


def name_failed_ranks(
    info: DistInfo, error: BaseException, timeout_s: float, store=None
) -> RankFailure:
    """After a failed collective: ask the store which ranks still answer, and say who did not.

    Every rank that survives a peer's death sees its collective fail (at once for a
    closed connection, after ``timeout_s`` for a rank that hangs) and checks in under
    ``auden/alive/<rank>`` in torchrun's key-value store; the ranks that have not checked
    in within a few seconds are the dead or hung ones. (Under torchrun on one machine a
    rank that *exits* is usually noticed first by torchrun, which stops the others and
    names it in its own summary; this covers the ranks that hang, and other machines.)
    """
    store = store if store is not None else _default_store()
    if store is None:
        return RankFailure(f"rank {info.rank}: a collective failed: {error}")
    wait_s = min(10.0, max(timeout_s, 1.0))
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")  # keys outlive a restart
    keys = {r: f"auden/alive/{attempt}/{r}" for r in range(info.world_size)}
    try:
        store.set(keys[info.rank], "1")
        deadline = time.monotonic() + wait_s
        missing = [r for r, k in keys.items() if not store.check([k])]
        while missing and time.monotonic() < deadline:
            time.sleep(0.2)
            missing = [r for r in missing if not store.check([keys[r]])]
    except (RuntimeError, OSError) as e:  # the store went too (its host died)
        return RankFailure(f"rank {info.rank}: a collective failed ({error}); the store: {e}")
    if not missing:
        return RankFailure(
            f"rank {info.rank}: a collective failed although every rank answers: {error}"
        )
    which = ", ".join(map(str, missing))
    return RankFailure(
        f"rank {info.rank}: rank{'s' if len(missing) > 1 else ''} {which} died or stopped answering (no reply to a collective "
        f"within trainer.dist_timeout={timeout_s:g} s, nor to a check-in within "
        f"{wait_s:g} s); {type(error).__name__}: {str(error).splitlines()[0][:200]}"
    )


def _default_store():
    """torchrun's TCP key-value store that the process group was built on (None if none)."""
    try:
        return dist.distributed_c10d._get_default_store()
    except (RuntimeError, AttributeError, ValueError):
        return None
