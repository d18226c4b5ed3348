"""Find, average and resolve the checkpoints a model is decoded from.

icefall's conventions: the trainer writes ``checkpoint-<batch_idx_train>.pt`` and
``epoch-<n>.pt`` into ``exp_dir``; each holds ``model`` (trainable weights), optionally
``model_avg`` (the running average, updated as ``avg = avg*(1-w) + cur*w`` with
``w = average_period / batch_idx_train``), ``batch_idx_train`` and ``config``.

Because the running average at step ``e`` is the mean of the weights over ``(0, e]``,
the mean over ``(s, e]`` is ``(avg_e*e - avg_s*s) / (e - s)``: two checkpoints give the
average of every step between them. Without ``model_avg`` we fall back to the plain mean
of the checkpoints themselves. Either way at most two checkpoints are held in memory.

Example::

    spec = CheckpointSpec(iter=100000, avg=5)
    path = resolve_checkpoint("exp/zipformer_qwen2", spec)  # averaged-iter-100000-avg-5.pt
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from auden.training.checkpoint import save_checkpoint

log = logging.getLogger(__name__)

_ITER_RE = re.compile(r"^checkpoint-(\d+)\.pt$")
_EPOCH_RE = re.compile(r"^epoch-(\d+)\.pt$")

StateDict = dict[str, torch.Tensor]


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


def iter_checkpoints(exp_dir: str | Path, *, at_most: int = 0) -> list[Path]:
    """``checkpoint-<i>.pt`` files of ``exp_dir``, newest first; only ``i <= at_most`` if > 0."""
    found = []
    for p in Path(exp_dir).glob("checkpoint-*.pt"):
        m = _ITER_RE.match(p.name)
        if m and (at_most <= 0 or int(m.group(1)) <= at_most):
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found, reverse=True)]


def epoch_checkpoints(exp_dir: str | Path) -> list[Path]:
    """``epoch-<n>.pt`` files of ``exp_dir``, newest first."""
    found = []
    for p in Path(exp_dir).glob("epoch-*.pt"):
        m = _EPOCH_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found, reverse=True)]


def load_checkpoint(path: str | Path) -> dict:
    """Memory-map a checkpoint: only the tensors that are read get paged in."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
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


def average_state_dicts(paths: list[Path], key: str = "model") -> StateDict:
    """The element-wise mean of ``checkpoint[key]`` over ``paths``.

    One running sum plus the checkpoint being read: two checkpoints in memory at most.
    Float tensors are summed in float32 (or float64 if stored so) and cast back;
    integer buffers (counters) are taken from the first path, the newest.
    """
    if not paths:
        raise ValueError("average_state_dicts needs at least one checkpoint")
    total: StateDict = {}
    dtypes: dict[str, torch.dtype] = {}
    for i, path in enumerate(paths):
        # A helper call, so that no reference to this file's tensors (which would keep
        # its whole memory map alive) outlives the iteration.
        _add_checkpoint(total, dtypes, path, key, first=paths[0] if i else None)
    n = len(paths)
    for k, v in total.items():
        if v.is_floating_point():
            v /= n
            total[k] = v.to(dtypes[k])
    return total


def _add_checkpoint(
    total: StateDict, dtypes: dict[str, torch.dtype], path: Path, key: str, first: Path | None
) -> None:
    sd = _state_dict(load_checkpoint(path), key, path)
    if first is None:
        for k, v in sd.items():
            dtypes[k] = v.dtype
            total[k] = v.to(_sum_dtype(v.dtype), copy=True)
        return
    _check_same_keys(total, sd, first, path)
    for k, v in sd.items():
        if total[k].is_floating_point():
            total[k] += v.to(total[k].dtype)


def average_running_models(start: Path | None, end: Path) -> StateDict:
    """The mean of the weights over the steps in ``(start, end]``, from two ``model_avg``.

    ``start=None`` means from the beginning of training: ``end``'s running average itself.
    The result takes the dtypes of ``end["model"]`` (``model_avg`` is often float64).
    """
    end_ckpt = load_checkpoint(end)
    avg_end = _state_dict(end_ckpt, "model_avg", end)
    model_end = end_ckpt.get("model", {})
    e = _averaged_steps(end_ckpt, end)
    if start is None:
        s, avg_start = 0, None
    else:
        start_ckpt = load_checkpoint(start)
        avg_start = _state_dict(start_ckpt, "model_avg", start)
        _check_same_keys(avg_end, avg_start, end, start)
        s = _averaged_steps(start_ckpt, start)
        if s >= e:
            raise ValueError(
                f"cannot average from '{start}' (step {s}) to '{end}' (step {e}): "
                "the start must be an earlier step than the end"
            )
    out: StateDict = {}
    for k, v_end in avg_end.items():
        dtype = model_end[k].dtype if k in model_end else v_end.dtype
        if not v_end.is_floating_point():
            out[k] = v_end.clone()
        elif avg_start is None:
            out[k] = v_end.to(dtype, copy=True)
        else:
            mean = v_end.double().mul(e)  # one float64 temporary per tensor, updated in place
            mean.sub_(avg_start[k].double(), alpha=s).div_(e - s)
            out[k] = mean.to(dtype)
            del mean
    return out


def has_running_average(paths: list[Path]) -> bool:
    """Whether every checkpoint in ``paths`` carries icefall's ``model_avg``."""
    return all("model_avg" in load_checkpoint(p) for p in paths)


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
        if not path.is_file():
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
                + _existing_checkpoints(exp_dir)
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
        found = iter_checkpoints(exp_dir, at_most=spec.iter)
        needed_for_mean = found[: spec.avg]
        if len(needed_for_mean) < spec.avg:
            raise MissingCheckpointsError(
                f"checkpoint.model.iter={spec.iter} avg={spec.avg} needs {spec.avg} "
                f"checkpoint-<i>.pt with i <= {spec.iter} in '{exp_dir}', found "
                f"{len(needed_for_mean)}. " + _existing_checkpoints(exp_dir)
            )
        if spec.use_averaged_model and has_running_average(needed_for_mean[:1]):
            if len(found) < spec.avg + 1:
                raise MissingCheckpointsError(
                    f"checkpoint.model.iter={spec.iter} avg={spec.avg} with "
                    f"use_averaged_model=true needs {spec.avg + 1} checkpoint-<i>.pt with "
                    f"i <= {spec.iter} in '{exp_dir}' (the average runs between the newest "
                    f"and the {spec.avg + 1}th newest), found {len(found)}. "
                    + _existing_checkpoints(exp_dir)
                )
            pair = [found[spec.avg], found[0]]
            if has_running_average(pair):
                return pair, "running_average"
        return list(needed_for_mean), "mean"

    first = spec.epoch - spec.avg + 1
    if first < 1:
        raise ValueError(
            f"checkpoint.model.epoch={spec.epoch} with avg={spec.avg}: cannot average "
            f"more epochs than there are (avg must be <= epoch)"
        )
    wanted = [exp_dir / f"epoch-{n}.pt" for n in range(spec.epoch, first - 1, -1)]
    missing = [p.name for p in wanted if not p.is_file()]
    if missing:
        raise MissingCheckpointsError(
            f"checkpoint.model.epoch={spec.epoch} avg={spec.avg} needs {missing} in "
            f"'{exp_dir}'. " + _existing_checkpoints(exp_dir)
        )
    if spec.use_averaged_model and has_running_average(wanted[:1]):
        if first == 1:  # the interval starts at step 0: the running average itself
            return [wanted[0]], "running_average"
        start = exp_dir / f"epoch-{first - 1}.pt"
        if not start.is_file():
            raise MissingCheckpointsError(
                f"checkpoint.model.epoch={spec.epoch} avg={spec.avg} with "
                f"use_averaged_model=true needs '{start.name}' (the start of the average) "
                f"in '{exp_dir}'. " + _existing_checkpoints(exp_dir)
            )
        if has_running_average([start]):
            return [start, wanted[0]], "running_average"
    return wanted, "mean"


def _existing_checkpoints(exp_dir: Path) -> str:
    names = [p.name for p in iter_checkpoints(exp_dir)] + [
        p.name for p in epoch_checkpoints(exp_dir)
    ]
    if not Path(exp_dir).is_dir():
        return f"'{exp_dir}' is not a directory."
    if not names:
        return f"'{exp_dir}' holds no checkpoint-<i>.pt or epoch-<n>.pt."
    return f"Checkpoints in '{exp_dir}': {', '.join(names)}."


def _state_dict(ckpt: Mapping, key: str, path: Path) -> StateDict:
    sd = ckpt.get(key)
    if not isinstance(sd, Mapping):
        raise KeyError(f"checkpoint '{path}' has no '{key}' state dict")
    return dict(sd)


def _averaged_steps(ckpt: Mapping, path: Path) -> int:
    """The step ``model_avg`` was last updated at: batch_idx_train, down to average_period."""
    if "batch_idx_train" not in ckpt:
        raise KeyError(f"checkpoint '{path}' has 'model_avg' but no 'batch_idx_train'")
    step = int(ckpt["batch_idx_train"])
    period = int(ckpt.get("average_period") or _config_average_period(ckpt) or 1)
    return (step // period) * period


def _config_average_period(ckpt: Mapping) -> int | None:
    trainer = (ckpt.get("config") or {}).get("trainer") or {}
    return trainer.get("average_period") if isinstance(trainer, Mapping) else None


def _sum_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype in (torch.float16, torch.bfloat16):
        return torch.float32
    return dtype


def _check_same_keys(a: Mapping, b: Mapping, path_a: Path, path_b: Path) -> None:
    if a.keys() != b.keys():
        only_a = sorted(set(a) - set(b))[:5]
        only_b = sorted(set(b) - set(a))[:5]
        raise ValueError(
            f"checkpoints '{path_a}' and '{path_b}' hold different parameters: "
            f"only in the first {only_a}, only in the second {only_b}"
        )
