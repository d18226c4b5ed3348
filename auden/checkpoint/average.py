"""Averaging checkpoints: icefall's running average, and the plain mean.

While training, :class:`RunningAverage` keeps icefall's running model average of the
trainable weights, in float64; every ``average_period`` steps, at step ``b``::

    avg = avg * (1 - p / b) + current * (p / b)        with p = average_period

so ``avg`` at step ``b`` is the mean of the weights over steps ``(0, b]``. Checkpoints
store it as ``model_avg``. Because of that, the mean over ``(s, e]`` is
``(avg_e*e - avg_s*s) / (e - s)``: two checkpoints give the average of every step
between them (:func:`average_running_models`). Without ``model_avg``, or when it cannot
give the interval (too few checkpoints, or a run shorter than ``average_period`` that never
updated it), resolving falls back to the plain mean of the checkpoints themselves
(:func:`average_state_dicts`) with a one-line warning. Either way at most two checkpoints
are held in memory; frozen parts are never copied.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from auden.checkpoint.storage import load_checkpoint
from auden.checkpoint.trainable import trainable_state_dict

StateDict = dict[str, torch.Tensor]


class RunningAverage:
    """icefall's running average of the trainable weights, kept in float64 on the CPU."""

    def __init__(self, state: Mapping[str, torch.Tensor]) -> None:
        self.state = {k: _to_avg(v) for k, v in state.items()}

    @classmethod
    def of_model(cls, model: nn.Module) -> RunningAverage:
        """Start from the model's current trainable weights (icefall starts at step 0)."""
        return cls(trainable_state_dict(model))

    @torch.no_grad()
    def update(self, model: nn.Module, batch_idx_train: int, average_period: int) -> None:
        weight_cur = average_period / batch_idx_train
        current = model.state_dict(keep_vars=True)
        for key, avg in self.state.items():
            cur = current[key].detach()
            if avg.is_floating_point():
                avg.mul_(1 - weight_cur).add_(
                    cur.to(device="cpu", dtype=avg.dtype), alpha=weight_cur
                )
            else:  # integer buffers (counters) are not averaged
                avg.copy_(cur.cpu())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.state


def _to_avg(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().cpu()
    return t.to(torch.float64).clone() if t.is_floating_point() else t.clone()


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
    e = averaged_steps(end_ckpt, end)
    if start is None:
        s, avg_start = 0, None
    else:
        start_ckpt = load_checkpoint(start)
        avg_start = _state_dict(start_ckpt, "model_avg", start)
        _check_same_keys(avg_end, avg_start, end, start)
        s = averaged_steps(start_ckpt, start)
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


def _state_dict(ckpt: Mapping, key: str, path: Path) -> StateDict:
    sd = ckpt.get(key)
    if not isinstance(sd, Mapping):
        raise KeyError(f"checkpoint '{path}' has no '{key}' state dict")
    return dict(sd)


def averaged_steps(ckpt: Mapping, path: Path) -> int:
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
