"""The bad-input catalogue: each catalogue test records what it saw as one table row.

The tests live in ``tests/test_bad_*.py`` and assert the expected behaviour as usual;
``python tools/bad_inputs_table.py`` runs them with ``AUDEN_BAD_INPUTS=<file>`` set and
writes the rows (case, entry point, expected, observed) into RELIABILITY.md, so the table
shows what the code did in that run, not what someone remembers it doing::

    record("NaN samples", "auden transcribe", "one-line error naming the file", err)
"""

from __future__ import annotations

import json
import os
import re

ENV = "AUDEN_BAD_INPUTS"
_ABS_PATH = re.compile(r"(?:/[\w.@+-]+)+/([\w.@+-]+)")


def record(case: str, entry: str, expected: str, observed: str) -> None:
    """Append one row to ``$AUDEN_BAD_INPUTS`` (nothing when it is unset)."""
    path = os.environ.get(ENV)
    if not path:
        return
    row = {"case": case, "entry": entry, "expected": expected, "observed": clean(observed)}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def clean(text: str, limit: int = 220) -> str:
    """The first non-empty line, absolute paths shortened to their last part."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = _ABS_PATH.sub(r"\1", lines[0] if lines else "(no output)")
    return line if len(line) <= limit else line[: limit - 3] + "..."
