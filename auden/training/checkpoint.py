"""Save, load, find and prune training checkpoints (icefall's file names).

``exp_dir/checkpoint-<batch_idx_train>.pt`` every ``save_every_n`` steps and
``exp_dir/epoch-<n>.pt`` at each epoch end. A checkpoint is a plain dict that
``torch.load(weights_only=True)`` reads: tensors, numbers, strings, lists, dicts.

Writes go to a hidden temporary file in the same folder, are flushed to disk, then
renamed over the final name, so a crash (even SIGKILL) leaves either the old state or
the complete new file, never a partial file under a checkpoint's name::

    save_checkpoint(payload, exp_dir / "checkpoint-4000.pt")
    ckpt = load_checkpoint(exp_dir / "checkpoint-4000.pt")
    remove_old_checkpoints(exp_dir, keep_last_k=30)

Only *trainable* weights are saved (``trainable_state_dict``): frozen pretrained parts
(a 7B LLM) are rebuilt from the paths in the config, not copied into every checkpoint.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

ITER_PATTERN = re.compile(r"^checkpoint-(\d+)\.pt$")
EPOCH_PATTERN = re.compile(r"^epoch-(\d+)\.pt$")
TEMP_PREFIX = ".tmp-"


def iter_checkpoint_path(exp_dir: str | Path, batch_idx_train: int) -> Path:
    return Path(exp_dir) / f"checkpoint-{batch_idx_train}.pt"


def epoch_checkpoint_path(exp_dir: str | Path, epoch: int) -> Path:
    return Path(exp_dir) / f"epoch-{epoch}.pt"


def trainable_keys(model: nn.Module) -> list[str]:
    """State-dict keys that training changes: trainable parameters, and the persistent
    buffers of modules that are not frozen (e.g. BatchNorm statistics of a trained encoder).

    A buffer belongs to the nearest enclosing module that has parameters; when all of those
    are frozen (a pretrained LLM), the buffer comes with the pretrained weights instead.
    """
    keys = [name for name, p in model.named_parameters() if p.requires_grad]
    frozen: dict[str, bool] = {}  # module name -> has parameters, all frozen
    for name, module in model.named_modules():
        params = list(module.parameters())
        if params:
            frozen[name] = not any(p.requires_grad for p in params)
    for module_name, module in model.named_modules():
        for name, _ in module.named_buffers(recurse=False):
            if name in module._non_persistent_buffers_set:
                continue
            if _owner_is_frozen(module_name, frozen):
                continue
            keys.append(f"{module_name}.{name}" if module_name else name)
    return keys


def _owner_is_frozen(module_name: str, frozen: dict[str, bool]) -> bool:
    parts = module_name.split(".") if module_name else []
    for i in range(len(parts), -1, -1):
        prefix = ".".join(parts[:i])
        if prefix in frozen:
            return frozen[prefix]
    return False


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable part of ``model.state_dict()``, detached, on the CPU."""
    state = model.state_dict(keep_vars=True)
    return {k: state[k].detach().cpu().clone() for k in trainable_keys(model) if k in state}


def load_trainable_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str):
    """Load a trainable state dict; every trainable key must be there and nothing else."""
    expected = set(trainable_keys(model))
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise ValueError(
            f"checkpoint '{source}' does not match the model: missing {sorted(missing)[:5]}"
            f" ({len(missing)}), unexpected {sorted(unexpected)[:5]} ({len(unexpected)})"
        )
    model.load_state_dict(dict(state), strict=False)


def save_checkpoint(payload: Mapping, path: str | Path) -> Path:
    """torch.save ``payload`` to ``path`` atomically (temp file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TEMP_PREFIX}{path.name}.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(dict(payload), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening a folder
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint safely (``weights_only=True``), onto the CPU."""
    path = Path(path)
    if not path.is_file():
        found = ", ".join(p.name for p in find_checkpoints(path.parent)[:5]) or "none"
        raise FileNotFoundError(f"checkpoint '{path}' not found (newest there: {found})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"checkpoint '{path}' cannot be loaded: {e}") from e


def _numbered(exp_dir: Path, pattern: re.Pattern) -> list[tuple[int, Path]]:
    found = []
    for p in exp_dir.glob("*.pt"):
        m = pattern.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found, reverse=True)


def find_checkpoints(exp_dir: str | Path) -> list[Path]:
    """``checkpoint-<n>.pt`` files, newest (largest n) first."""
    return [p for _, p in _numbered(Path(exp_dir), ITER_PATTERN)]


def find_epoch_checkpoints(exp_dir: str | Path) -> list[Path]:
    """``epoch-<n>.pt`` files, newest first."""
    return [p for _, p in _numbered(Path(exp_dir), EPOCH_PATTERN)]


def remove_old_checkpoints(exp_dir: str | Path, keep_last_k: int) -> list[Path]:
    """Delete all but the ``keep_last_k`` newest iteration checkpoints (0 keeps all)."""
    if keep_last_k <= 0:
        return []
    removed = find_checkpoints(exp_dir)[keep_last_k:]
    for p in removed:
        p.unlink(missing_ok=True)
        logger.info("removed old checkpoint %s", p)
    return removed


def remove_temp_files(exp_dir: str | Path) -> list[Path]:
    """Delete temporary files left by a run killed while saving."""
    stale = list(Path(exp_dir).glob(f"{TEMP_PREFIX}*"))
    for p in stale:
        p.unlink(missing_ok=True)
        logger.warning("removed %s, left by an interrupted checkpoint write", p)
    return stale
