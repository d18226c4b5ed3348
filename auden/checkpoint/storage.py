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
from auden.checkpoint.sharded import is_sharded_checkpoint, load_sharded_checkpoint


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, a file-size limit, ...)."""


def save_checkpoint(payload: Mapping, path: str | Path) -> Path:
    """torch.save ``payload`` to ``path`` atomically (temp file, fsync, rename).

    A failed write (torch reports a full disk as a bare ``RuntimeError`` from its zip
    writer) becomes a :class:`CheckpointWriteError` naming the file; the temporary file
    is removed, and ``path`` and every earlier checkpoint are left as they were.
    """
    path = Path(path)
    try:
        with atomic_file(path) as tmp:
            torch.save(dict(payload), tmp)
    except (OSError, RuntimeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointWriteError(
            f"cannot write checkpoint '{path}' (disk full or a file-size limit?): {reason}; "
            "the checkpoints already written are untouched"
        ) from e
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint safely (``weights_only=True``) onto the CPU, memory-mapped.

    A sharded checkpoint folder (FSDP) gives its weights as full tensors, without its
    optimizer state (:func:`auden.checkpoint.sharded.load_sharded_checkpoint`).

    Memory-mapping pages in only the tensors that are read (averaging reads a few keys
    of many files); the mapping is private, so tensors may be changed in place.
    """
    path = Path(path)
    if path.is_dir() and is_sharded_checkpoint(path):
        try:
            return load_sharded_checkpoint(path)
        except Exception as e:
            raise ValueError(f"sharded checkpoint '{path}' cannot be loaded: {e}") from e
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
