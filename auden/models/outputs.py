"""Typed outputs exchanged between encoders, models and the trainer."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class EncoderOutput:
    """What every audio encoder returns: frames and the number of valid frames per row."""

    frames: torch.Tensor  # [B, T', D]
    lens: torch.Tensor  # [B] int64

    def padding_mask(self) -> torch.Tensor:
        """[B, T'] bool, True at padded positions."""
        t = self.frames.shape[1]
        return torch.arange(t, device=self.lens.device)[None, :] >= self.lens[:, None]


@dataclass
class ModelOutput:
    """What a trainable model's ``forward(batch)`` returns to the trainer.

    ``loss`` is the mean over ``num_targets`` (tokens or frames) and is what gets
    back-propagated; the counts let the trainer aggregate exactly across batches and ranks.
    ``metrics`` holds extra per-batch sums to log (e.g. ``{"ctc_loss": ...}``).
    """

    loss: torch.Tensor
    num_targets: int
    num_correct: int | None = None  # correctly predicted target tokens (token accuracy)
    metrics: dict[str, float] = field(default_factory=dict)
