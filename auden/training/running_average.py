"""icefall's running model average, of the trainable weights only, in float64.

Every ``average_period`` steps, at step ``b``::

    avg = avg * (1 - p / b) + current * (p / b)        with p = average_period

so ``avg`` at step ``b`` is the mean of the weights over steps ``(0, b]``, sampled every
``p`` steps (starting from the initial weights). Checkpoints store it as ``model_avg``;
``auden.training.average`` recovers the mean over any interval between two checkpoints.
Frozen parts are never copied: a frozen 7B LLM must not land in CPU memory.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from auden.training.checkpoint import trainable_state_dict


class RunningAverage:
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
                avg.mul_(1 - weight_cur).add_(cur.to(device="cpu", dtype=avg.dtype), alpha=weight_cur)
            else:  # integer buffers (counters) are not averaged
                avg.copy_(cur.cpu())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.state


def _to_avg(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().cpu()
    return t.to(torch.float64).clone() if t.is_floating_point() else t.clone()
