#!/usr/bin/env python3
"""Forward+backward throughput of a Zipformer encoder on this machine, in audio-seconds/second.

Each step runs forward, a scalar loss and backward on a batch of ``--batch-size`` clips of
``--seconds`` seconds (100 Hz, 80-bin features; random values, since speed does not depend
on them). Reports the median over ``--steps`` timed steps after ``--warmup`` untimed ones,
plus the load average, since a shared CPU skews the numbers::

    python benchmarks/zipformer_throughput.py --config tiny medium --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time

import torch

from auden.models.encoders.zipformer import ZipformerEncoder

logger = logging.getLogger("zipformer_throughput")


def measure(config: str, batch_size: int, seconds: float, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    encoder = ZipformerEncoder(config).train()
    frames = int(seconds * 100)
    features = torch.randn(batch_size, frames, 80)
    lens = torch.full((batch_size,), frames, dtype=torch.int64)
    durations = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        out = encoder(features, lens)
        out.frames.pow(2).mean().backward()
        encoder.zero_grad(set_to_none=True)
        if step >= warmup:
            durations.append(time.perf_counter() - start)
    median = statistics.median(durations)
    return {
        "config": config,
        "params": encoder.num_params(),
        "threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "seconds_per_clip": seconds,
        "median_step_s": round(median, 4),
        "min_step_s": round(min(durations), 4),
        "audio_s_per_s_median": round(batch_size * seconds / median, 2),
        "audio_s_per_s_best": round(batch_size * seconds / min(durations), 2),
        "steps": steps,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", nargs="+", default=["tiny", "medium"], help="presets or json")
    parser.add_argument("--threads", nargs="+", type=int, default=[torch.get_num_threads()])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0, help="duration of every clip")
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for config in args.config:
        for threads in args.threads:
            torch.set_num_threads(threads)
            load_before = os.getloadavg()[0]
            result = measure(config, args.batch_size, args.seconds, args.steps, args.warmup)
            result["loadavg_1min_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            result["cpus"] = os.cpu_count()
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
