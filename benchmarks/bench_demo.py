#!/usr/bin/env python3
"""The demo (`make demo`): wall time by stage, read from the last run's own summary.

    python benchmarks/bench_demo.py [--summary egs/mini_en/exp/stage_timings.tsv]

``egs/mini_en/run.sh`` writes ``<exp>/stage_timings.tsv`` (``stage<TAB>seconds`` rows and
a ``total`` row) when it ends. This script only reads it: it never runs the demo. With no
summary there is nothing to report and it writes no JSON (and says so). Goal: the whole
demo within its 20-minute budget.
"""

from __future__ import annotations

import csv
import sys
from datetime import datetime, timezone
from pathlib import Path

from benchlib import BENCH_DIR, Goal, Recorder, bench_parser

DEFAULT = BENCH_DIR.parent / "egs" / "mini_en" / "exp" / "stage_timings.tsv"
BUDGET_S = 20 * 60


def read_summary(path: Path) -> list[tuple[str, float]]:
    rows = []
    with path.open(newline="") as f:
        for i, row in enumerate(csv.reader(f, delimiter="\t")):
            if i == 0 and row == ["stage", "seconds"]:
                continue
            if len(row) != 2:
                raise ValueError(f"{path}, line {i + 1}: expected 'stage<TAB>seconds', got {row}")
            try:
                rows.append((row[0], float(row[1])))
            except ValueError:
                raise ValueError(f"{path}, line {i + 1}: '{row[1]}' is not seconds") from None
    if not rows or rows[-1][0] != "total":
        raise ValueError(f"{path}: no 'total' row (an interrupted run?)")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--summary", type=Path, default=DEFAULT)
    args = parser.parse_args(argv)
    if not args.summary.is_file():
        print(f"no demo summary at '{args.summary}' (run `make demo` first): nothing to report")
        sys.exit(0)
    rows = read_summary(args.summary)
    written = datetime.fromtimestamp(args.summary.stat().st_mtime, timezone.utc)
    with Recorder("demo", "The demo (make demo): wall time by stage", args, order=80) as rec:
        for stage, seconds in rows[:-1]:
            rec.figure(f"stage {stage}", "s", [seconds])
        rec.figure("total", "s", [rows[-1][1]], goal=Goal("<=", BUDGET_S))
        rec.note(
            f"one run, read from its summary ({args.summary.name}, written "
            f"{written:%Y-%m-%d %H:%M} UTC): not repeated by the suite; the machine was shared"
        )
        rec.details["summary_written"] = written.strftime("%Y-%m-%dT%H:%M:%SZ")


if __name__ == "__main__":
    main()
