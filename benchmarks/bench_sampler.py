#!/usr/bin/env python3
"""Real (non-padding) frames in training batches: auden's sampler against random and Lhotse's.

    python benchmarks/bench_sampler.py [--cuts 20000] [--max-duration 600]

A LibriSpeech-like mix: ``--cuts`` cut durations drawn log-normal and kept in 1-35 s
(mean about 13.5 s). Every sampler sees the same cuts; a batch is padded to its longest
cut, so its fill is ``sum(durations) / (batch size x longest)``, and an epoch's fill is
the same sum over all its batches. Each repeat is a different shuffling seed. Samplers:
auden's training sampler (``auden.data.sampler.build_sampler`` with ``SamplerConfig``'s
defaults), random batching (Lhotse ``SimpleCutSampler``, shuffled) and Lhotse's
``DynamicBucketingSampler`` with its own defaults and with 30 buckets. Anchors measured
here before auden existed: random 47.1%, Lhotse 10 buckets 91.0%, 30 buckets 96.6%.
Goal: auden >= 97%. (Restoring the sampler's state is issue 15's benchmark.)
"""

from __future__ import annotations

import warnings

import numpy as np
from benchlib import Goal, Recorder, bench_parser, clock
from lhotse import CutSet, MonoCut
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler

from auden.data.config import SamplerConfig
from auden.data.sampler import build_sampler


def librispeech_like(num: int, seed: int = 0) -> CutSet:
    """Durations log-normal around 13.5 s, redrawn until within 1-35 s."""
    rng = np.random.default_rng(seed)
    durations = np.empty(0)
    while len(durations) < num:
        d = rng.lognormal(mean=2.45, sigma=0.55, size=num)
        durations = np.concatenate([durations, d[(d >= 1.0) & (d <= 35.0)]])
    return CutSet.from_cuts(
        MonoCut(id=f"cut-{i:07d}", start=0.0, duration=round(float(d), 2), channel=0)
        for i, d in enumerate(durations[:num])
    )


def fill(sampler) -> tuple[float, int]:
    real = padded = 0.0
    batches = 0
    for batch in sampler:
        durations = [c.duration for c in batch]
        real += sum(durations)
        padded += len(durations) * max(durations)
        batches += 1
    return real / padded, batches


def samplers(cuts: CutSet, max_duration: float, seed: int) -> dict:
    auden_cfg = SamplerConfig(max_duration=max_duration)
    return {
        "Lhotse DynamicBucketingSampler, defaults": lambda: DynamicBucketingSampler(
            cuts, max_duration=max_duration, shuffle=True, seed=seed
        ),
        "random batching (Lhotse SimpleCutSampler)": lambda: SimpleCutSampler(
            cuts, max_duration=max_duration, shuffle=True, seed=seed
        ),
        "Lhotse DynamicBucketingSampler, 30 buckets": lambda: DynamicBucketingSampler(
            cuts, max_duration=max_duration, num_buckets=30, shuffle=True, seed=seed
        ),
        f"auden build_sampler, defaults ({auden_cfg.num_buckets} buckets)": lambda: build_sampler(
            cuts, auden_cfg, seed=seed
        ),
    }


ANCHORS = {  # percent, measured on this machine before auden existed (issue 14)
    "random batching (Lhotse SimpleCutSampler)": 47.1,
    "Lhotse DynamicBucketingSampler, defaults": 91.0,
    "Lhotse DynamicBucketingSampler, 30 buckets": 96.6,
}


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--cuts", type=int, default=20000)
    parser.add_argument("--max-duration", type=float, default=600.0)
    args = parser.parse_args(argv)
    num_cuts = 2000 if args.quick else args.cuts
    repeats = args.repeats or (1 if args.quick else 2)
    # The cuts are in memory on purpose (the same for every sampler): not a lazy manifest.
    warnings.filterwarnings("ignore", message=".*eagerly read CutSet.*")
    cuts = librispeech_like(num_cuts)
    durations = [c.duration for c in cuts]
    title = "Sampler: real (non-padding) frames in training batches"
    with Recorder("sampler", title, args, order=20) as rec:
        results: dict[str, list[float]] = {}
        seconds: dict[str, list[float]] = {}
        for seed in range(repeats):
            for name, make in samplers(cuts, args.max_duration, seed).items():
                start = clock()
                value, batches = fill(make())
                seconds.setdefault(name, []).append(clock() - start)
                results.setdefault(name, []).append(100 * value)
                rec.details[f"batches[{name}]"] = batches
        anchor = "Lhotse DynamicBucketingSampler, defaults"
        for name, values in results.items():
            is_auden = name.startswith("auden")
            rec.figure(
                name,
                "% real frames",
                values,
                anchor="" if name == anchor else anchor,
                goal=Goal(">=", 97.0) if is_auden else None,
                note=(f"anchor before auden: {ANCHORS[name]}%; " if name in ANCHORS else "")
                + f"one epoch sampled in {np.median(seconds[name]):.2f} s",
            )
        rec.details.update(
            cuts=num_cuts,
            mean_duration=round(float(np.mean(durations)), 2),
            max_duration=args.max_duration,
        )
        rec.note(
            f"{num_cuts} cuts, mean {np.mean(durations):.2f} s, max_duration {args.max_duration:g} s; "
            f"repeats are shuffling seeds 0..{repeats - 1}"
        )


if __name__ == "__main__":
    main()
