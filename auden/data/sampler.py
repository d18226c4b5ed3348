"""Samplers: Lhotse's DynamicBucketingSampler per DDP rank, resumable mid-epoch.

Resuming mid-epoch replays the sampler over cut *metadata* only, dropping the batches
the interrupted run had already consumed: the sampler is deterministic given
``(seed, epoch)``, so the next batch is exactly the one the run would have seen. Counting
consumed batches in the training loop (instead of trusting the sampler's own state) keeps
this exact even though DataLoader workers prefetch batches ahead of the loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler

from auden.data.config import SamplerConfig

_CUTS_FOR_BINS = 10000
_BATCHES_PER_BUCKET = 4


def build_sampler(
    cuts: CutSet,
    cfg: SamplerConfig,
    *,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    shuffle: bool | None = None,
) -> DynamicBucketingSampler:
    """Buckets by duration; every rank gets its own batches, the same number of them.

    Bucket boundaries are estimated from the first cuts here, so that a corpus with
    fewer cuts than ``num_buckets`` gets fewer buckets instead of an assertion error, and
    a small corpus no more than 10 (each bucket should hold several batches).
    """
    durations = sorted(c.duration for c in islice(cuts, _CUTS_FOR_BINS))
    if not durations:
        raise ValueError("no cut left to sample from (all filtered out, or empty manifests)")
    # More buckets pad less (benchmarks/bench_sampler.py), but a bucket holding less than
    # a few batches only splits them: beyond 10, only as many as keep 4 batches in each.
    enough = int(sum(durations) / (_BATCHES_PER_BUCKET * cfg.max_duration))
    num_buckets = max(1, min(cfg.num_buckets, max(10, enough), len(durations)))
    bins = estimate_duration_buckets_from(durations, num_buckets)
    return DynamicBucketingSampler(
        cuts,
        max_duration=cfg.max_duration,
        max_cuts=cfg.max_cuts,
        duration_bins=bins,
        shuffle=cfg.shuffle if shuffle is None else shuffle,
        drop_last=cfg.drop_last,
        rank=rank,
        world_size=world_size,
        seed=seed,
    )


def estimate_duration_buckets_from(durations: list[float], num_buckets: int) -> list[float]:
    """Boundaries that put about the same total duration in each of ``num_buckets`` buckets."""
    if num_buckets <= 1:
        return []
    per_bucket = sum(durations) / num_buckets
    bins, acc = [], 0.0
    for d in durations:
        acc += d
        if acc >= per_bucket * (len(bins) + 1) and len(bins) < num_buckets - 1:
            bins.append(d)
    return sorted(set(bins))


class ResumableSampler:
    """Wraps a Lhotse sampler; ``skip(n)`` drops the first n batches of the next epoch."""

    def __init__(self, sampler: DynamicBucketingSampler) -> None:
        self.sampler = sampler
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def skip(self, num_batches: int) -> None:
        self._skip = num_batches

    def __iter__(self) -> Iterator[CutSet]:
        skip, self._skip = self._skip, 0
        for i, batch in enumerate(self.sampler):
            if i >= skip:
                yield batch

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "seed": self.sampler.seed,
                "world_size": self.sampler.world_size, "rank": self.sampler.rank}
