"""Write and read one checkpoint file: atomic ``torch.save``, safe ``torch.load``.

A checkpoint is a plain dict that ``torch.load(weights_only=True)`` reads: tensors,
numbers, strings, lists, dicts. It is written through :func:`auden.atomic.atomic_file`,
so a crash leaves the old file or the complete new one::

    save_checkpoint(payload, exp_dir / "checkpoint-4000.pt")
    ckpt = load_checkpoint(exp_dir / "checkpoint-4000.pt")
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from auden.atomic import atomic_file
from auden.checkpoint.files import describe_checkpoints


def save_checkpoint(payload: Mapping, path: str | Path) -> Path:
    """torch.save ``payload`` to ``path`` atomically (temp file, fsync, rename)."""
    path = Path(path)
    with atomic_file(path) as tmp:
        torch.save(dict(payload), tmp)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint safely (``weights_only=True``) onto the CPU, memory-mapped.

    Memory-mapping pages in only the tensors that are read (averaging reads a few keys
    of many files); the mapping is private, so tensors may be changed in place.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint '{path}' not found. " + describe_checkpoints(path.parent)
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # not a zip-format file, or a filesystem without mmap: read it all
        pass
    except Exception as e:
        raise ValueError(f"checkpoint '{path}' cannot be loaded: {e}") from e
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"checkpoint '{path}' cannot be loaded: {e}") from e
