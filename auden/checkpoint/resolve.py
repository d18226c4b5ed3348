"""Resolve the checkpoint a model is decoded or exported from, averaging it once.

``checkpoint.model`` of an evaluation config (:class:`CheckpointSpec`) names it; the
order is icefall's (see :func:`resolve_checkpoint`)::

    spec = CheckpointSpec(iter=100000, avg=5)
    path = resolve_checkpoint("exp/zipformer_qwen2", spec)  # averaged-iter-100000-avg-5.pt
    model = load_model(path)                                # rebuilt from its config
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from auden.checkpoint.average import (
    average_running_models,
    average_state_dicts,
    averaged_steps,
    has_running_average,
)
from auden.checkpoint.files import (
    describe_checkpoints,
    epoch_checkpoint_path,
    find_checkpoints,
    stored_checkpoint,
)
from auden.checkpoint.sharded import is_sharded_checkpoint
from auden.checkpoint.storage import load_checkpoint, save_checkpoint
from auden.checkpoint.trainable import load_trainable_state_dict

log = logging.getLogger(__name__)


@dataclass
class CheckpointSpec:
    """Which model to decode: ``checkpoint.model`` of the evaluation config."""

    filename: str = ""  # a checkpoint file, absolute or relative to exp_dir; wins if set
    iter: int = 0  # average the newest checkpoint-<i>.pt with i <= iter
    epoch: int = 0  # average epoch-(epoch-avg+1).pt ... epoch-<epoch>.pt
    avg: int = 1  # how many checkpoints (or save intervals) to average
    use_averaged_model: bool = True  # use icefall's running average when present


class MissingCheckpointsError(FileNotFoundError):
    """The checkpoints an average needs are not all in ``exp_dir``."""


def averaged_filename(spec: CheckpointSpec) -> str:
    """The name of the file an averaging spec is cached under (empty if none)."""
    if spec.iter > 0 and spec.avg > 0:
        return f"averaged-iter-{spec.iter}-avg-{spec.avg}.pt"
    if spec.epoch > 0 and spec.avg > 0:
        return f"averaged-epoch-{spec.epoch}-avg-{spec.avg}.pt"
    return ""


def resolve_checkpoint(exp_dir: str | Path, spec: CheckpointSpec) -> Path:
    """The file holding the model to decode, averaging (once) if the spec asks for it.

    Order: ``spec.filename`` (absolute or under ``exp_dir``); else ``iter>0 and avg>0``
    -> ``averaged-iter-<iter>-avg-<avg>.pt``; else ``epoch>0 and avg>0`` ->
    ``averaged-epoch-<epoch>-avg-<avg>.pt``; else ``exp_dir/pretrained.pt``. An averaged
    file that exists and was made the same way is reused.
    """
    exp_dir = Path(exp_dir)
    if spec.filename:
        path = Path(spec.filename)
        path = path if path.is_absolute() else exp_dir / path
        if not (path.is_file() or is_sharded_checkpoint(path)):
            raise FileNotFoundError(
                f"checkpoint.model.filename '{spec.filename}': no such file '{path}'"
            )
        return path
    name = averaged_filename(spec)
    if not name:
        path = exp_dir / "pretrained.pt"
        if not path.is_file():
            raise FileNotFoundError(
                f"'{path}' does not exist; set checkpoint.model.filename, or "
                "checkpoint.model.iter/epoch with checkpoint.model.avg. "
                + describe_checkpoints(exp_dir)
            )
        return path
    target = exp_dir / name
    try:
        sources, method = _plan_average(exp_dir, spec)
    except MissingCheckpointsError:
        if target.is_file():  # its sources may since have been cleaned up
            log.info("reusing %s (some of its checkpoints are gone)", target)
            return target
        raise
    made_by = {"method": method, "sources": [p.name for p in sources]}
    if target.is_file():
        stored = load_checkpoint(target).get("averaged_from")
        if stored == made_by:
            log.info("reusing %s", target)
            return target
        log.warning("%s was made from %s, now asked for %s: remaking it", target, stored, made_by)
    log.info("averaging %s with %s into %s", [p.name for p in sources], method, target)
    if method == "running_average":
        start = None if len(sources) == 1 else sources[0]
        model = average_running_models(start, sources[-1])
    else:
        model = average_state_dicts(sources)
    newest = load_checkpoint(sources[-1] if method == "running_average" else sources[0])
    payload = {
        "model": model,
        "config": newest.get("config", {}),
        "batch_idx_train": newest.get("batch_idx_train", 0),
        "epoch": newest.get("epoch", 0),
        "averaged_from": made_by,
    }
    save_checkpoint(payload, target)
    return target


def _plan_average(exp_dir: Path, spec: CheckpointSpec) -> tuple[list[Path], str]:
    """Which files an average reads, and how: ``running_average`` or ``mean``.

    For ``running_average`` the list is ``[start, end]`` (or ``[end]`` when the interval
    starts at step 0); for ``mean`` it is the ``avg`` checkpoints, newest first.
    """
    if spec.iter > 0:
        found = find_checkpoints(exp_dir, at_most=spec.iter)
        needed_for_mean = found[: spec.avg]
        if len(needed_for_mean) < spec.avg:
            raise MissingCheckpointsError(
                f"checkpoint.model.iter={spec.iter} avg={spec.avg} needs {spec.avg} "
                f"checkpoint-<i>.pt with i <= {spec.iter} in '{exp_dir}', found "
                f"{len(needed_for_mean)}. " + describe_checkpoints(exp_dir)
            )
        if spec.use_averaged_model and has_running_average(needed_for_mean[:1]):
            if len(found) < spec.avg + 1:
                _warn_plain_mean(
                    spec,
                    f"the running average needs {spec.avg + 1} checkpoint-<i>.pt with "
                    f"i <= {spec.iter} (from the {spec.avg + 1}th newest to the newest), "
                    f"'{exp_dir}' holds {len(found)}",
                )
                return list(needed_for_mean), "mean"
            pair = [found[spec.avg], found[0]]
            if has_running_average(pair) and _interval_is_averaged(pair[0], pair[1], spec):
                return pair, "running_average"
        return list(needed_for_mean), "mean"

    first = spec.epoch - spec.avg + 1
    if first < 1:
        raise ValueError(
            f"checkpoint.model.epoch={spec.epoch} with avg={spec.avg}: cannot average "
            f"more epochs than there are (avg must be <= epoch)"
        )
    wanted = [
        stored_checkpoint(epoch_checkpoint_path(exp_dir, n)) for n in range(spec.epoch, first - 1, -1)
    ]
    missing = [p.name for p in wanted if not p.exists()]
    if missing:
        raise MissingCheckpointsError(
            f"checkpoint.model.epoch={spec.epoch} avg={spec.avg} needs {missing} in "
            f"'{exp_dir}'. " + describe_checkpoints(exp_dir)
        )
    if spec.use_averaged_model and has_running_average(wanted[:1]):
        if first == 1:  # the interval starts at step 0: the running average itself
            if _interval_is_averaged(None, wanted[0], spec):
                return [wanted[0]], "running_average"
            return wanted, "mean"
        start = stored_checkpoint(epoch_checkpoint_path(exp_dir, first - 1))
        if not start.exists():
            raise MissingCheckpointsError(
                f"checkpoint.model.epoch={spec.epoch} avg={spec.avg} with "
                f"use_averaged_model=true needs '{start.name}' (the start of the average) "
                f"in '{exp_dir}'. " + describe_checkpoints(exp_dir)
            )
        if has_running_average([start]) and _interval_is_averaged(start, wanted[0], spec):
            return [start, wanted[0]], "running_average"
    return wanted, "mean"


def _interval_is_averaged(start: Path | None, end: Path, spec: CheckpointSpec) -> bool:
    """Whether the running average was updated between ``start`` and ``end``; warns if not.

    A run shorter than ``average_period`` (a first trial) never updates it: ``model_avg``
    still holds the initial weights, and the interval between two of its checkpoints is
    empty. The plain mean of the checkpoints is then the only sensible average.
    """
    e = averaged_steps(load_checkpoint(end), end)
    s = 0 if start is None else averaged_steps(load_checkpoint(start), start)
    if e > s:
        return True
    since = "the start of training" if start is None else f"'{start.name}'"
    _warn_plain_mean(
        spec,
        f"the running average was not updated between {since} and '{end.name}' "
        f"(trainer.average_period is longer than the steps in between)",
    )
    return False


def _warn_plain_mean(spec: CheckpointSpec, why: str) -> None:
    which = f"iter={spec.iter}" if spec.iter > 0 else f"epoch={spec.epoch}"
    log.warning(
        "checkpoint.model %s avg=%d: taking the plain mean of the checkpoints, because %s",
        which, spec.avg, why,
    )


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model of a checkpoint (``config.model``) and load its weights, in eval mode.

    The checkpoint holds the trainable state only (:mod:`auden.checkpoint.trainable`);
    the frozen pretrained parts come from the paths in the config.
    """
    from auden.auto.auto_model import AutoModel

    path = Path(path)
    ckpt = load_checkpoint(path)
    model_cfg = (ckpt.get("config") or {}).get("model")
    if not model_cfg:
        raise KeyError(f"checkpoint '{path}' has no config.model to rebuild the model from")
    if "model" not in ckpt:
        raise KeyError(f"checkpoint '{path}' has no 'model' state dict")
    model = AutoModel.from_config(model_cfg)
    load_trainable_state_dict(model, ckpt["model"], str(path))
    del ckpt
    return model.to(device).eval()
