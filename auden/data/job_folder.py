"""Resumable jobs that write into a folder of parts: the job's description, checked on
every re-run, and small files written atomically.

A re-run into a folder that holds a different job (another source, other settings) would
silently mix two datasets; it is refused instead, naming the settings that differ.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from auden.atomic import atomic_file

logger = logging.getLogger(__name__)


def check_same_job(job_file: Path, job: dict, what: str, hint: str) -> None:
    """Write ``job`` to ``job_file``, or check it equals the one already there.

    ``what`` names the job in messages ("conversion"); ``hint`` says how to start afresh.
    """
    job = json.loads(json.dumps(job))  # tuples as lists, as they read back
    if job_file.is_file():
        previous = json.loads(job_file.read_text(encoding="utf-8"))
        if previous != job:
            changed = sorted(k for k in job if previous.get(k) != job[k])
            raise ValueError(f"{job_file.parent} holds a {what} with different {changed}; {hint}")
        logger.info("resuming the %s in %s", what, job_file.parent)
        return
    write_text_atomically(job_file, json.dumps(job, indent=2, ensure_ascii=False))


def write_text_atomically(path: Path, text: str) -> None:
    """A small text file written through :func:`auden.atomic.atomic_file`."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
