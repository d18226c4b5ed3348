"""Write a model folder under a temporary name and rename it, so no reader sees half a folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


def save_folder_atomically(out: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_folder)``, then rename the folder to ``out`` (replacing it)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out
