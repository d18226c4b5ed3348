#!/usr/bin/env python3
"""Resume time: from a checkpoint's data position to the first batch, 10/50/90% into an epoch.

    python benchmarks/bench_resume.py [--cuts 1000000]

``--cuts`` synthetic cuts (1-20 s, a supervision and a features entry each, as a recipe's
fbank manifest has) are written once as a jsonl.gz manifest and as a Lhotse Shar folder
(cuts only, shards of 10,000). Three ways to get the first batch after a resume:

- sharded jsonl / sharded Shar (``auden.data.sharded``, what ``data.sharded=true`` or a
  ``shar_dir`` source trains with): seek each source to its position from the seeded draws,
  open the shard holding it, skip within that shard, rebuild one segment's batches;
- replay (``auden.data.loader.TrainData``, the default for jsonl sources): the weighted
  mixture, filters and ``DynamicBucketingSampler`` replayed over the cut metadata up to the
  stop point (the anchor).

Times are CPU seconds of this process (one thread). The sharded plan (counting a jsonl
manifest's lines, reading a Shar index) is paid at every start, resumed or not, and is a
figure of its own. Goal: <= 10 s at every position of a 1,000,000-cut epoch.
"""

from __future__ import annotations

import gzip
import json
import math
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
from benchlib import Goal, Recorder, bench_parser, clock
from lhotse import CutSet

from auden.data.config import DataSource, SamplerConfig
from auden.data.filters import CutFilter, FilterSpec
from auden.data.mixing import WeightedMixture
from auden.data.sampler import ResumableSampler, build_sampler
from auden.data.sharded import ShardedStream, ShardPlan

SHARD = 10_000
SEGMENT = 2000
POSITIONS = (0.1, 0.5, 0.9)


def _cut_template(storage: str) -> str:
    """One cut's JSON line with ``{id}``, ``{duration}``, ``{frames}`` and ``{key}`` left
    open: formatting a string is ~5x cheaper than json.dumps of a dict, which made
    writing a 1,000,000-cut corpus take minutes before anything was timed."""
    marks = {"id": "@ID@", "duration": "@DUR@", "frames": "@FRAMES@", "key": "@KEY@"}
    cut = {
        "id": marks["id"], "start": 0.0, "duration": marks["duration"], "channel": 0,
        "supervisions": [{"id": marks["id"], "recording_id": marks["id"], "start": 0.0,
                          "duration": marks["duration"], "channel": 0,
                          "text": "the quick brown fox jumps over the lazy dog"}],
        "features": {"type": "kaldi-fbank", "num_frames": marks["frames"], "num_features": 80,
                     "frame_shift": 0.01, "sampling_rate": 16000, "start": 0.0,
                     "duration": marks["duration"], "storage_type": "lilcom_chunky",
                     "storage_path": storage, "storage_key": marks["key"],
                     "channels": 0},
        "type": "MonoCut",
    }
    line = json.dumps(cut).replace("{", "{{").replace("}", "}}")
    for name, mark in marks.items():
        quoted = f'"{mark}"'
        line = line.replace(quoted, "{" + name + "}" if name in ("duration", "frames")
                            else '"{' + name + '}"')
    return line + "\n"


def write_corpus(folder: Path, num_cuts: int) -> tuple[Path, Path]:
    """The same cuts as one jsonl.gz manifest and as a Shar folder of SHARD-cut shards."""
    rng = np.random.default_rng(0)
    durations = np.round(rng.uniform(1.0, 20.0, size=num_cuts), 2)
    manifest, shar = folder / "cuts.jsonl.gz", folder / "shar"
    shar.mkdir()
    # Never read (the benchmark times positions, not features), but it must exist: training
    # refuses a manifest whose feature archive is missing.
    storage = folder / "synth.lca"
    storage.touch()
    template = _cut_template(str(storage))
    with gzip.open(manifest, "wt", compresslevel=1) as whole:
        for k in range(math.ceil(num_cuts / SHARD)):
            first = k * SHARD
            lines = [template.format(id=f"synth-{i:08d}", duration=float(durations[i]),
                                     frames=int(round(durations[i] * 100)), key=i * 4096)
                     for i in range(first, min(num_cuts, first + SHARD))]
            whole.writelines(lines)
            with gzip.open(shar / f"cuts.{k:06d}.jsonl.gz", "wt", compresslevel=1) as part:
                part.writelines(lines)
    return manifest, shar


class _Sizes:
    """Stands in for the dataset: the benchmark times the data position, not feature I/O."""

    def __getitem__(self, cuts: CutSet) -> int:
        return len(cuts)


def _filter() -> CutFilter:
    return CutFilter(FilterSpec(min_duration=0.3, max_duration=30.0))


def _plan(source: DataSource) -> ShardPlan:
    return ShardPlan.build([source], num_readers=1, seed=7, segment_cuts=SEGMENT,
                           jsonl_shard_cuts=SHARD)


def sharded_resume(plan: ShardPlan, fraction: float, sampler: SamplerConfig) -> float:
    """CPU seconds from a saved position ``fraction`` into the epoch to its next batch."""
    stream = ShardedStream(plan, _Sizes(), _filter(), sampler, rank=0, num_workers=0)
    stream.set_epoch(1)
    segment = int(fraction * plan.num_segments(0))
    start = clock()
    stream.resume([(segment, 3)], 0)
    next(iter(stream))
    return clock() - start


def replay_resume(
    manifest: Path, fractions: tuple[float, ...], sampler: SamplerConfig
) -> list[tuple[float, int]]:
    """CPU seconds the default sampler's replay takes to reach each of ``fractions`` of
    the epoch, and the batches replayed to get there.

    A resume at batch k iterates the sampler from the epoch's start and drops k batches,
    so its cost is the time one uninterrupted pass takes to reach batch k: one pass
    measures every position (three resumes cost 1.5 epochs of replay).
    """
    source = DataSource(manifest=manifest, task="transcribe", name="synth")
    mixture = WeightedMixture.from_sources([source], seed=7)
    mixture.set_epoch(1)
    total = len(mixture)
    resumable = ResumableSampler(build_sampler(CutSet(mixture).filter(_filter()), sampler,
                                               seed=7))
    resumable.set_epoch(1)
    targets, reached = sorted(fractions), []
    seen = batches = 0
    start = clock()
    for batch in resumable:
        seen += len(batch)
        batches += 1
        while targets and seen >= targets[0] * total:
            reached.append((clock() - start, batches))
            targets.pop(0)
        if not targets:
            break
    return reached


def _timed(fn) -> float:
    start = clock()
    fn()
    return clock() - start


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--cuts", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    num_cuts = 20_000 if args.quick else args.cuts
    repeats = args.repeats or 1
    sampler = SamplerConfig(max_duration=200.0)
    title = "Resume: from a checkpoint's data position to the next batch"
    with Recorder("resume", title, args, order=25) as rec, tempfile.TemporaryDirectory() as tmp:
        manifest, shar = write_corpus(Path(tmp), num_cuts)
        sources = {
            "sharded jsonl": DataSource(manifest=manifest, task="transcribe", name="synth"),
            "sharded Shar": DataSource(manifest=None, shar_dir=shar, task="transcribe",
                                       name="synth"),
        }
        plans = {}
        for name, source in sources.items():
            rec.figure(f"{name}: the plan, at every start", "s", [
                _timed(partial(_plan, source)) for _ in range(repeats)
            ])
            plans[name] = _plan(source)
        passes = [replay_resume(manifest, POSITIONS, sampler) for _ in range(repeats)]
        for k, fraction in enumerate(POSITIONS):
            pct = f"{fraction:.0%}"
            replay_name = f"replay, {pct} into the epoch"
            rec.figure(replay_name, "s", [p[k][0] for p in passes],
                       note=f"{passes[0][k][1]} batches replayed")
            for name, plan in plans.items():
                rec.figure(
                    f"{name}, {pct} into the epoch", "s",
                    [sharded_resume(plan, fraction, sampler) for _ in range(repeats)],
                    anchor=replay_name, goal=Goal("<=", 10.0),
                )
        rec.details.update(cuts=num_cuts, shard_cuts=SHARD,
                           segment_cuts=SEGMENT, max_duration=sampler.max_duration)
        rec.note(
            f"{num_cuts} synthetic cuts of 1-20 s, one reader; sharded: shards of {SHARD} cuts, "
            f"segments of {SEGMENT} cuts, resumed 3 batches into the segment at that position"
        )


if __name__ == "__main__":
    main()
