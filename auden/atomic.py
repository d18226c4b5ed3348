"""Atomic writes: a reader (or a restarted run) sees the old file or folder, or the new one.

Every save in auden goes through these two context managers, so a crash, even SIGKILL,
never leaves a half-written checkpoint or model folder under its final name::

    with atomic_file(exp_dir / "checkpoint-400.pt") as tmp:
        torch.save(payload, tmp)
    with atomic_folder(out_dir) as tmp:
        (tmp / "config.json").write_text(...)

The body writes to a temporary path beside the target (same filesystem, so the rename
is atomic). On success the data is fsync'd, renamed over the target, and the parent
folder fsync'd, so the rename itself survives a power cut. On an exception the
temporary path is removed and the target is untouched.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"


def temp_path(target: Path) -> Path:
    """The hidden temporary name a write of ``target`` goes through (one per process).

    It ends with the target's name, so writers that pick a format by suffix
    (``.jsonl.gz``) write the same format to it.
    """
    return target.parent / f"{TEMP_PREFIX}{os.getpid()}-{target.name}"


def fsync_path(path: Path) -> None:
    """fsync a file or folder; a filesystem that cannot open folders is skipped."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # e.g. EINVAL on a folder of some network filesystems
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"nothing was written for '{path}' (expected '{tmp}')")
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


@contextmanager
def atomic_folder(path: str | Path, temp: Path | None = None) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it replaces the folder ``path``.

    ``temp``: a temporary folder already filled (by several processes, which need one
    name they all know), renamed the same way; it must start with ``TEMP_PREFIX``.

    An existing folder is swapped with the new one in one ``renameat2(RENAME_EXCHANGE)``
    where the kernel has it (Linux), so there is no moment without a complete folder;
    elsewhere the old folder is renamed aside first (a crash between the two renames
    leaves the new folder complete under its temporary name, and the old one aside).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp if temp is not None else temp_path(path)
    if temp is None:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    try:
        yield tmp
        for root, _, files in os.walk(tmp):
            for name in files:
                fsync_path(Path(root) / name)
            fsync_path(Path(root))
        _replace_folder(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_path(path.parent)


def _replace_folder(new: Path, target: Path) -> None:
    if not target.exists():
        os.replace(new, target)
        return
    if not target.is_dir():
        raise NotADirectoryError(f"cannot replace '{target}' with a folder: it is a file")
    if _exchange(new, target):  # `new` now names the old folder
        shutil.rmtree(new)
        return
    aside = target.parent / f"{TEMP_PREFIX}{os.getpid()}-old-{target.name}"
    os.replace(target, aside)
    os.replace(new, target)
    shutil.rmtree(aside)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where that is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc != 0:
        logger.debug("renameat2 failed (errno %d): renaming in two steps", ctypes.get_errno())
        return False
    return True
