"""Sharded training reads: every rank and dataloader worker reads its own shards.

The path a multi-node run takes. For reader k of K (K = ranks x dataloader workers), an
epoch goes like this:

- each source's shards (a Shar folder's shards, or a jsonl manifest cut into line ranges)
  are shuffled with ``(seed, epoch)``, the same order on every reader, and dealt round
  robin: reader k reads shards k, k+K, k+2K, ... So no two readers read the same shard
  in an epoch, and every shard is read;
- the reader draws its cuts from the sources by weight (as :class:`WeightedMixture`
  does), each source's shards read in turn and repeated when they run out, until it has
  drawn its share of the epoch (``cuts_per_epoch / K``);
- the draws are cut into segments of ``segment_cuts``; each segment is filtered and
  bucketed on its own (:func:`bucket_batches`), seeded for that segment.

Why segments: resuming needs only ``(segment, batches done in it)`` per reader. Where
each source stands at the start of segment s follows from the seeded draws alone
(numbers, nothing read), so a resumed reader opens the shard holding that position,
skips within that shard only, and rebuilds one segment's batches: the cost does not
grow with how far into the epoch the run was.

    plan = ShardPlan.build(sources, num_readers=4, seed=42, segment_cuts=2000)
    stream = ShardedStream(plan, dataset, cut_filter, sampler_cfg, rank=0, num_workers=2)
    stream.set_epoch(3); stream.resume({...})           # positions from a checkpoint
"""

from __future__ import annotations

import bisect
import gzip
import logging
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.dataset.sampling.dynamic import DurationBatcher
from lhotse.serialization import decode_json_line, deserialize_item

from auden.data.config import DataSource, SamplerConfig
from auden.data.mixing import count_cuts, tag_cut
from auden.data.prompts import stable_seed
from auden.data.sampler import estimate_duration_buckets_from
from auden.data.shar import SharShard, list_shards, read_shard

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shard:
    """A unit of reading: one Shar shard, or a range of lines of a jsonl manifest."""

    num_cuts: int
    shar: SharShard | None = None
    manifest: Path | None = None
    first_line: int = 0

    def read(self, skip: int = 0) -> Iterator[Cut]:
        """The shard's cuts after the first ``skip``, read sequentially."""
        if self.shar is not None:
            return islice(iter(read_shard(self.shar)), skip, None)
        return _read_lines(self.manifest, self.first_line + skip, self.num_cuts - skip)


def _read_lines(manifest: Path, start: int, count: int) -> Iterator[Cut]:
    # Lines before `start` are skipped undecoded: no JSON parsing, no Cut objects.
    opener = gzip.open if manifest.suffix == ".gz" else open
    with opener(manifest, "rb") as f:
        lines = (line for line in f if line.strip())
        for line in islice(lines, start, start + count):
            yield deserialize_item(decode_json_line(line))


def source_shards(source: DataSource, num_readers: int, jsonl_shard_cuts: int) -> list[Shard]:
    """The shards of a source; a jsonl manifest is cut into a multiple of ``num_readers``
    line ranges of about ``jsonl_shard_cuts`` cuts, so that readers get equal shares."""
    if source.shar_dir is not None:
        shards = [Shard(s.num_cuts, shar=s) for s in list_shards(source.shar_dir)]
    else:
        n = count_cuts(source.manifest)
        k = math.ceil(max(1, math.ceil(n / jsonl_shard_cuts)) / num_readers) * num_readers
        k = min(k, n)
        bounds = [round(i * n / k) for i in range(k + 1)] if k else [0]
        shards = [
            Shard(b - a, manifest=source.manifest, first_line=a)
            for a, b in zip(bounds, bounds[1:])
        ]
    if len(shards) < num_readers:
        raise ValueError(
            f"train source '{source.name}' ({source.location}): {len(shards)} shard(s) "
            f"({sum(s.num_cuts for s in shards)} cuts) for {num_readers} readers (ranks x "
            "dataloader workers); every reader needs a shard of its own: export smaller "
            "shards, or lower data.num_workers"
        )
    return shards


@dataclass(frozen=True)
class ShardPlan:
    """Who reads which shards, and which source every draw comes from; numbers only."""

    sources: list[DataSource]
    shards: list[list[Shard]]
    weights: list[float]
    cuts_per_epoch: int
    num_readers: int
    segment_cuts: int
    seed: int

    @classmethod
    def build(
        cls,
        sources: list[DataSource],
        *,
        num_readers: int,
        seed: int,
        segment_cuts: int = 2000,
        jsonl_shard_cuts: int = 10000,
        cuts_per_epoch: int = 0,
    ) -> ShardPlan:
        if segment_cuts < 1 or jsonl_shard_cuts < 1:
            raise ValueError(
                f"data.segment_cuts ({segment_cuts}) and data.jsonl_shard_cuts "
                f"({jsonl_shard_cuts}) must be >= 1"
            )
        shards = [source_shards(s, num_readers, jsonl_shard_cuts) for s in sources]
        for s, sh in zip(sources, shards):
            logger.info("train source %s: %s, %d cuts in %d shards (task %s, weight %g)",
                        s.name, s.location, sum(x.num_cuts for x in sh), len(sh), s.task,
                        s.weight)
        total = cuts_per_epoch or sum(x.num_cuts for sh in shards for x in sh)
        return cls(sources, shards, [s.weight for s in sources], total, num_readers,
                   segment_cuts, seed)

    def reader_shards(self, epoch: int, reader: int) -> list[list[Shard]]:
        """Each source's shards for ``reader`` this epoch (a deal of a seeded shuffle)."""
        out = []
        for i, shards in enumerate(self.shards):
            order = np.random.default_rng([self.seed, epoch, i]).permutation(len(shards))
            out.append([shards[j] for j in order[reader :: self.num_readers]])
        return out

    def reader_cuts(self, reader: int) -> int:
        base, extra = divmod(self.cuts_per_epoch, self.num_readers)
        return base + (1 if reader < extra else 0)

    def num_segments(self, reader: int) -> int:
        return math.ceil(self.reader_cuts(reader) / self.segment_cuts)

    def draws(self, epoch: int, reader: int, segment: int) -> np.ndarray:
        """The source of every cut of one segment."""
        n = min(self.segment_cuts, self.reader_cuts(reader) - segment * self.segment_cuts)
        if len(self.sources) == 1:
            return np.zeros(n, dtype=np.int64)
        p = np.asarray(self.weights, dtype=np.float64)
        rng = np.random.default_rng([self.seed, epoch, reader, segment])
        return rng.choice(len(self.sources), size=n, p=p / p.sum())

    def positions_at(self, epoch: int, reader: int, segment: int) -> list[int]:
        """Cuts drawn from each source before ``segment``: where each source stands."""
        counts = np.zeros(len(self.sources), dtype=np.int64)
        for s in range(segment):
            counts += np.bincount(self.draws(epoch, reader, s), minlength=len(self.sources))
        return counts.tolist()


def _stream(shards: list[Shard], start: int) -> Iterator[Cut]:
    """A reader's cuts of one source from position ``start``, its shards repeated forever."""
    total = sum(s.num_cuts for s in shards)
    start %= total
    i = 0
    while start >= shards[i].num_cuts:
        start -= shards[i].num_cuts
        i += 1
    while True:
        yield from shards[i].read(skip=start)
        start, i = 0, (i + 1) % len(shards)


class ShardedStream(torch.utils.data.IterableDataset):
    """Batches of this rank's readers (one per dataloader worker), each tagged with where
    its reader stands: ``((reader, segment, batches done in segment), AudioBatch)``."""

    def __init__(
        self,
        plan: ShardPlan,
        dataset: Callable[[CutSet], object],
        cut_filter: Callable[[Cut], bool],
        sampler: SamplerConfig,
        *,
        rank: int,
        num_workers: int,
        default_prompt_file: str | None = None,
    ) -> None:
        self.plan = plan
        self.dataset = dataset
        self.cut_filter = cut_filter
        self.sampler = sampler
        self.rank = rank
        self.workers = max(1, num_workers)
        self.default_prompt_file = default_prompt_file
        self.epoch = 1
        self.start: list[tuple[int, int]] = [(0, 0)] * self.workers  # per local reader
        self.rotation = 0  # dataloader worker w serves local reader (w + rotation) % workers

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.start = [(0, 0)] * self.workers
        self.rotation = 0

    def resume(self, positions: list[tuple[int, int]], next_local: int) -> None:
        self.start = [tuple(p) for p in positions]
        self.rotation = next_local

    def reader_of(self, local: int) -> int:
        return self.rank * self.workers + local

    def __iter__(self) -> Iterator:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        local = (worker + self.rotation) % self.workers
        return self._read(local)

    def _tagger(self, i: int) -> Callable[[Cut], Cut]:
        source = self.plan.sources[i]
        prompt = source.prompt_file or self.default_prompt_file
        prompt = str(prompt) if prompt else None
        return lambda cut: tag_cut(cut, source.task, prompt)

    def _read(self, local: int) -> Iterator:
        plan, epoch, reader = self.plan, self.epoch, self.reader_of(local)
        segment, skip = self.start[local]
        positions = plan.positions_at(epoch, reader, segment)
        streams = [_stream(sh, p) for sh, p in zip(plan.reader_shards(epoch, reader), positions)]
        taggers = [self._tagger(i) for i in range(len(streams))]
        for s in range(segment, plan.num_segments(reader)):
            batches = self._segment_batches(epoch, reader, s, streams, taggers)
            for b, cuts in enumerate(batches):
                if s == segment and b < skip:
                    continue
                yield (local, s, b + 1), self.dataset[cuts]

    def _segment_batches(self, epoch, reader, segment, streams, taggers) -> list[CutSet]:
        cuts = []
        for i in self.plan.draws(epoch, reader, segment):
            cut = taggers[i](next(streams[i]))
            if self.cut_filter(cut):
                cuts.append(cut)
        if not cuts:
            return []
        return bucket_batches(
            cuts, self.sampler, seed=stable_seed(self.plan.seed, epoch, reader, segment)
        )


def bucket_batches(cuts: list[Cut], cfg: SamplerConfig, seed: int) -> list[CutSet]:
    """One segment's batches: cuts grouped by duration (equal-duration buckets), packed up to
    ``max_duration`` seconds by Lhotse's ``DurationBatcher``, batch order shuffled.

    Why not ``DynamicBucketingSampler`` here: its bucket choice is seeded with the dataloader
    worker's id (or, unsynced, stops after one batch in lhotse 1.33); a segment must give
    the same batches whichever worker rebuilds it.
    """
    rng = random.Random(seed)
    durations = sorted(c.duration for c in cuts)
    # No more buckets than full batches: a small segment is not cut into one-cut batches.
    num_buckets = max(1, min(cfg.num_buckets, int(sum(durations) // cfg.max_duration)))
    bins = estimate_duration_buckets_from(durations, num_buckets)
    buckets: list[list[Cut]] = [[] for _ in range(len(bins) + 1)]
    for cut in cuts:
        buckets[bisect.bisect_right(bins, cut.duration)].append(cut)
    batches = []
    for bucket in buckets:
        if cfg.shuffle:
            rng.shuffle(bucket)
        batches.extend(
            DurationBatcher(
                bucket, max_duration=cfg.max_duration, max_cuts=cfg.max_cuts,
                drop_last=cfg.drop_last,
            )
        )
    if cfg.shuffle:
        rng.shuffle(batches)
    return batches


def all_ranks_have(flag: bool) -> bool:
    """True while every rank still has a batch: ranks end an epoch together, so that no
    rank waits in a gradient all-reduce for a rank that has run dry."""
    if not dist.is_initialized():
        return flag
    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


class PositionTracker:
    """Iterates a loader of ``ShardedStream`` items; remembers where each local reader stands
    after the batches handed out, which is what a checkpoint saves."""

    def __init__(self, loader, stream: ShardedStream) -> None:
        self.loader = loader
        self.stream = stream
        self.positions = list(stream.start)
        self.next_local = stream.rotation

    def __iter__(self) -> Iterator:
        it = iter(self.loader)
        try:
            while True:
                item = next(it, None)
                if not all_ranks_have(item is not None):
                    if item is not None:
                        logger.info("epoch %d ends on another rank's last batch", self.stream.epoch)
                    return
                (local, segment, done), batch = item
                self.positions[local] = (segment, done)
                self.next_local = (local + 1) % self.stream.workers
                yield batch
        finally:
            del it

    def state_dict(self) -> dict:
        return {
            "epoch": self.stream.epoch,
            "num_readers": self.stream.plan.num_readers,
            "positions": [list(p) for p in self.positions],
            "next_local": self.next_local,
        }
