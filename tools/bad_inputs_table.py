#!/usr/bin/env python3
"""Run the bad-input catalogue tests and write what they saw into RELIABILITY.md.

    python tools/bad_inputs_table.py            # runs tests/test_bad_*.py, rewrites the table
    python tools/bad_inputs_table.py --print    # print the table instead

Each catalogue test records one row (case, entry point, expected, observed) through
``tests/bad_inputs.py``; the table is replaced between the two markers below, and is not
written at all if any catalogue test failed (a table must show a passing run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bad-inputs:begin -->", "<!-- bad-inputs:end -->"


def run_catalogue(log: Path) -> int:
    tests = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_bad_*.py"))
    env = {**os.environ, "AUDEN_BAD_INPUTS": str(log), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
    print(" ".join(["pytest", "-q", *tests]), flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


def table(rows: list[dict]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| case | entry point | expected | observed |", "|---|---|---|---|"]
    lines += [
        f"| {cell(r['case'])} | {cell(r['entry'])} | {cell(r['expected'])} | "
        f"`{cell(r['observed'])}` |"
        for r in rows
    ]
    return "\n".join(lines)


def write_into(doc: Path, text: str) -> None:
    old = doc.read_text()
    if BEGIN not in old or END not in old:
        raise SystemExit(f"'{doc}' has no {BEGIN} ... {END} markers to put the table between")
    head, rest = old.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    tmp = doc.with_name(f".{doc.name}.tmp")
    tmp.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    tmp.replace(doc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--print", action="store_true", help="print the table, write nothing")
    parser.add_argument("--doc", default=str(ROOT / "RELIABILITY.md"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "rows.jsonl"
        code = run_catalogue(log)
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    text = table(rows)
    if args.print or code != 0:
        print(text)
    if code != 0:
        print(f"catalogue tests failed (pytest exit {code}): table not written", file=sys.stderr)
        return code
    if not args.print:
        write_into(Path(args.doc), text)
        print(f"{len(rows)} rows written to {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
