"""Checkpoint file names (icefall's) and finding, pruning and cleaning them in ``exp_dir``.

``checkpoint-<batch_idx_train>.pt`` every ``save_every_n`` steps, ``epoch-<n>.pt`` at
each epoch end; under FSDP each is a folder of the same name without ``.pt``
(:mod:`auden.checkpoint.sharded`). ``find_checkpoints`` lists both, newest first::

    find_checkpoints("exp/t", at_most=4000)   # [checkpoint-4000.pt, checkpoint-3000.pt, ...]
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from auden.atomic import TEMP_PREFIX

logger = logging.getLogger(__name__)

ITER_PATTERN = re.compile(r"^checkpoint-(\d+)(\.pt)?$")
EPOCH_PATTERN = re.compile(r"^epoch-(\d+)(\.pt)?$")


def iter_checkpoint_path(exp_dir: str | Path, batch_idx_train: int, sharded: bool = False) -> Path:
    return Path(exp_dir) / f"checkpoint-{batch_idx_train}{'' if sharded else '.pt'}"


def epoch_checkpoint_path(exp_dir: str | Path, epoch: int, sharded: bool = False) -> Path:
    return Path(exp_dir) / f"epoch-{epoch}{'' if sharded else '.pt'}"


def stored_checkpoint(path: Path) -> Path:
    """``path`` (a ``.pt`` name) or, if only that exists, its sharded folder."""
    folder = path.with_suffix("") if path.suffix == ".pt" else path
    return folder if not path.exists() and folder.is_dir() else path


def _numbered(exp_dir: Path, pattern: re.Pattern) -> list[tuple[int, Path]]:
    found = []
    for p in exp_dir.iterdir() if exp_dir.is_dir() else []:
        m = pattern.match(p.name)
        if m and (p.is_file() if m.group(2) else p.is_dir()):
            found.append((int(m.group(1)), p))
    return sorted(found, reverse=True)


def find_checkpoints(exp_dir: str | Path, *, at_most: int = 0) -> list[Path]:
    """``checkpoint-<i>.pt`` files (or folders), newest (largest i) first; only
    ``i <= at_most`` if > 0."""
    return [p for i, p in _numbered(Path(exp_dir), ITER_PATTERN) if at_most <= 0 or i <= at_most]


def find_epoch_checkpoints(exp_dir: str | Path) -> list[Path]:
    """``epoch-<n>.pt`` files, newest first."""
    return [p for _, p in _numbered(Path(exp_dir), EPOCH_PATTERN)]


def describe_checkpoints(exp_dir: str | Path) -> str:
    """One sentence naming the checkpoints in ``exp_dir``, for error messages."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        return f"'{exp_dir}' is not a directory."
    names = [p.name for p in find_checkpoints(exp_dir) + find_epoch_checkpoints(exp_dir)]
    if not names:
        return f"'{exp_dir}' holds no checkpoint-<i>.pt or epoch-<n>.pt."
    return f"Checkpoints in '{exp_dir}': {', '.join(names)}."


def remove_old_checkpoints(exp_dir: str | Path, keep_last_k: int) -> list[Path]:
    """Delete all but the ``keep_last_k`` newest iteration checkpoints (0 keeps all)."""
    if keep_last_k <= 0:
        return []
    removed = find_checkpoints(exp_dir)[keep_last_k:]
    for p in removed:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        logger.info("removed old checkpoint %s", p)
    return removed


def remove_temp_files(exp_dir: str | Path) -> list[Path]:
    """Delete temporary files and folders left by a run killed while saving."""
    stale = list(Path(exp_dir).glob(f"{TEMP_PREFIX}*"))
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        logger.warning("removed %s, left by an interrupted write", p)
    return stale
