#!/usr/bin/env python3
"""Run every benchmarks/bench_*.py, one after another, then regenerate RESULTS.md.

    python benchmarks/run_all.py            # make bench: the full sizes (<= 15 min on 2 cores)
    python benchmarks/run_all.py --quick    # make bench-quick: smoke sizes (<= 3 min)
    python benchmarks/run_all.py --only features sampler

Each script runs in its own process with ``OMP_NUM_THREADS=1`` unless set (on a shared
CPU two OpenMP threads spin-wait for each other). Full runs write to
``benchmarks/results/`` and regenerate ``benchmarks/RESULTS.md``; quick runs write to
``benchmarks/results/quick/`` and ``RESULTS.md`` there, so a smoke check never
overwrites the committed results. A failing script is reported and the others still run.
Scripts that read what a recipe run left (``bench_demo``: the demo's stage timings;
``bench_data_formats``: a prepared ``egs/mini_en``) say so and write nothing without it.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchlib import BENCH_DIR, RESULTS_DIR


def scripts(only: list[str] | None) -> list[Path]:
    found = sorted(BENCH_DIR.glob("bench_*.py"))
    if only:
        names = {p.stem.removeprefix("bench_"): p for p in found}
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise SystemExit(
                f"--only: no benchmarks/bench_<name>.py for {unknown}; have {sorted(names)}"
            )
        found = [names[n] for n in only]
    return found


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", help="names (bench_<name>.py) to run")
    parser.add_argument("--results", type=Path, help="JSON folder (default: see above)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="wall seconds per script: a guard against a hang, not a speed goal (on a "
        "loaded machine a one-thread script's wall time is several times its CPU time)",
    )
    args = parser.parse_args(argv)
    folder = args.results or (RESULTS_DIR / "quick" if args.quick else RESULTS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    failed, start = [], time.perf_counter()
    for script in scripts(args.only):
        name = script.stem.removeprefix("bench_")
        cmd = [sys.executable, str(script), "--out", str(folder / f"{name}.json")]
        cmd += ["--quick"] if args.quick else []
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        t0, cpu0 = time.perf_counter(), _children_cpu()
        try:
            rc = subprocess.run(cmd, env=env, timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        # CPU seconds too: on a shared machine they say what the script costs on an idle
        # one (the scripts run one thread), where wall time says how loaded it was.
        print(
            f"== {name}: {time.perf_counter() - t0:.1f} s wall, "
            f"{_children_cpu() - cpu0:.1f} CPU s, load {os.getloadavg()[0]:.1f}, exit {rc}",
            flush=True,
        )
        if rc != 0:
            failed.append(f"{name} ({rc})")
    out = folder / "RESULTS.md" if args.quick or args.results else BENCH_DIR / "RESULTS.md"
    subprocess.run(
        [
            sys.executable,
            str(BENCH_DIR / "make_results.py"),
            "--results",
            str(folder),
            "--out",
            str(out),
        ],
        check=True,
    )
    print(
        f"all benchmarks: {time.perf_counter() - start:.1f} s wall, {_children_cpu():.1f} CPU s; "
        f"failed: {failed or 'none'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
