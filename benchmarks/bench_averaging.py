#!/usr/bin/env python3
"""Averaging N checkpoints: peak RSS rise and wall time, as multiples of one checkpoint.

    python benchmarks/bench_averaging.py [--num 2 5 10 20] [--megabytes 32]

For each N, ``average_memory.measure`` writes N checkpoints of ``--megabytes`` of
float32 weights and resolves ``iter=<newest> avg=N`` in a fresh process (plain mean);
the peak RSS rise is divided by one file's size. The anchor of the wall time is reading
one checkpoint in the same fresh-process set-up (what averaging cannot beat per file).
Goal: <= 2.5x one checkpoint at every N.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from average_memory import measure, write_checkpoints
from benchlib import Goal, Recorder, bench_parser

_LOAD_ONE = "import sys, torch; torch.load(sys.argv[1], weights_only=True)"


def load_one_seconds(megabytes: float, repeats: int) -> list[float]:
    """Wall time of a fresh process that loads one checkpoint (start-up included)."""
    with tempfile.TemporaryDirectory() as tmp:
        write_checkpoints(Path(tmp), 1, megabytes, running=False)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", _LOAD_ONE, f"{tmp}/checkpoint-10.pt"], check=True)
            times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--num", type=int, nargs="+", default=[2, 5, 10, 20])
    parser.add_argument("--megabytes", type=float, default=32)
    args = parser.parse_args(argv)
    if args.quick:
        args.num, args.megabytes = [2], 8
    repeats = args.repeats or (1 if args.quick else 2)
    torch.set_num_threads(1)
    with Recorder("averaging", "Checkpoint averaging: peak memory and time", args, order=70) as rec:
        rec.figure(
            "load 1 checkpoint (fresh process)", "s", load_one_seconds(args.megabytes, repeats)
        )
        for num in args.num:
            runs = []
            for _ in range(repeats):
                start = time.perf_counter()
                runs.append(
                    (measure(num=num, megabytes=args.megabytes), time.perf_counter() - start)
                )
            rec.figure(
                f"average {num}: peak RSS rise",
                "x one checkpoint",
                [r["ratio"] for r, _ in runs],
                goal=Goal("<=", 2.5),
            )
            rec.figure(
                f"average {num}: wall (writing excluded)",
                "s",
                [r["average_s"] for r, _ in runs],
                anchor="load 1 checkpoint (fresh process)",
            )
        rec.details["checkpoint_bytes"] = runs[0][0]["checkpoint_bytes"]
        rec.note(
            f"checkpoints of {args.megabytes:g} MiB float32 in 16 tensors; ratio = wall time / "
            "loading one checkpoint in a fresh process (python start-up included in both)"
        )


if __name__ == "__main__":
    main()
