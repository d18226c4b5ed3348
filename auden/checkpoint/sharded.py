"""Sharded checkpoints (``trainer.strategy=fsdp``): one folder per checkpoint, written by
every rank with ``torch.distributed.checkpoint`` (DCP), read back by any number of ranks
or by one process without a process group (evaluate.py, ``auden export``).

A folder ``checkpoint-<i>/`` (or ``epoch-<n>/``) holds::

    .metadata, __<rank>_0.distcp   DCP: "model", "model_avg", "optimizer" (each rank's shards)
    meta.pt                        the rest: counters, sampler, RNG, scheduler, config

Every rank writes into one temporary folder beside the target, which rank 0 renames to
its final name once all have finished: a crash leaves no folder under a checkpoint's
name (:func:`auden.checkpoint.files.remove_temp_files` clears the temporary one)::

    save_sharded_checkpoint({"model": ..., "optimizer": ...}, meta, exp_dir / "checkpoint-40")
    ckpt = load_checkpoint(exp_dir / "checkpoint-40")   # one process: full tensors + meta
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.distributed as dist

from auden.atomic import TEMP_PREFIX, atomic_folder

META = "meta.pt"
# What a reader without the training set-up needs: the weights and their running average.
MODEL_KEYS = ("model", "model_avg")


def is_sharded_checkpoint(path: str | Path) -> bool:
    return (Path(path) / ".metadata").is_file() and (Path(path) / META).is_file()


def shared_temp_path(target: Path) -> Path:
    """The temporary folder every rank writes a checkpoint into (one name for all ranks)."""
    return target.parent / f"{TEMP_PREFIX}sharded-{target.name}"


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def save_sharded_checkpoint(tensors: Mapping, meta: Mapping, path: str | Path) -> Path:
    """Every rank saves its shards of ``tensors``; rank 0 adds ``meta`` and renames.

    A collective: every rank calls it with its own shards (DTensors) and the same ``meta``.
    """
    import torch.distributed.checkpoint as dcp

    path = Path(path)
    tmp = shared_temp_path(path)
    main = not dist.is_initialized() or dist.get_rank() == 0
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier()
    dcp.save(dict(tensors), checkpoint_id=str(tmp), no_dist=not dist.is_initialized())
    if main:
        torch.save(dict(meta), tmp / META)
        with atomic_folder(path, temp=tmp):
            pass
    _barrier()
    return path


def load_sharded_into(tensors: dict, path: str | Path) -> None:
    """Fill ``tensors`` (each rank's DTensors, or full tensors) in place from ``path``."""
    import torch.distributed.checkpoint as dcp

    dcp.load(tensors, checkpoint_id=str(path))


def load_sharded_meta(path: str | Path) -> dict:
    return torch.load(Path(path) / META, map_location="cpu", weights_only=True)


def load_sharded_checkpoint(path: str | Path) -> dict:
    """The meta and the full ``model`` / ``model_avg`` tensors, in one process.

    Reads the weights only (not the optimizer state), without a process group, so that
    averaging and export treat the folder like a ``.pt`` checkpoint.
    """
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict_from_keys

    path = Path(path)
    ckpt = load_sharded_meta(path)
    stored = _stored_keys(path)
    keys = {k for k in MODEL_KEYS if k in stored}
    with warnings.catch_warnings():  # "assuming ... a single process": that is the intent
        warnings.filterwarnings("ignore", message="torch.distributed is unavailable")
        ckpt.update(_load_state_dict_from_keys(keys, checkpoint_id=str(path)))
    return ckpt


def _stored_keys(path: Path) -> set[str]:
    """The top-level keys a DCP folder holds ("model", "optimizer", ...)."""
    from torch.distributed.checkpoint import FileSystemReader

    metadata = FileSystemReader(str(path)).read_metadata()
    planner = metadata.planner_data or {}
    return {p[0] for p in planner.values() if p} or {k.split(".")[0] for k in metadata.state_dict_metadata}
