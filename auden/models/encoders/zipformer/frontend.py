"""Convolutional front end: 100 Hz fbank -> 50 Hz frames of the first stack's width."""

from __future__ import annotations

import torch
from torch import nn

from auden.models.encoders.zipformer.activations import SwooshR
from auden.models.encoders.zipformer.layers import BiasNorm


def _time_mask(lens: torch.Tensor, t: int) -> torch.Tensor:
    """[B, 1, T, 1] bool, True at padded time steps (broadcasts over channels and freq)."""
    return (torch.arange(t, device=lens.device)[None, :] >= lens[:, None])[:, None, :, None]


class ConvFrontEnd(nn.Module):
    """Three 3x3 convolutions (the second halves time and frequency, the third frequency).

    Padded time steps are zeroed before each convolution, which is what a convolution's
    own zero padding gives a clip alone, so valid frames do not depend on the batch.
    Output length: ``ceil(T / 2)``.
    """

    def __init__(
        self, num_mel_bins: int, channels: tuple[int, ...], out_dim: int, use_k2: bool = False
    ) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(c2, c3, 3, stride=(1, 2), padding=1)
        self.activation = SwooshR(use_k2)
        freq = (((num_mel_bins + 1) // 2) + 1) // 2
        self.out = nn.Linear(c3 * freq, out_dim)
        self.norm = BiasNorm(out_dim)

    def forward(
        self, features: torch.Tensor, lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        t = features.shape[1]
        x = features.unsqueeze(1).masked_fill(_time_mask(lens, t), 0.0)  # [B, 1, T, F]
        x = self.activation(self.conv1(x)).masked_fill(_time_mask(lens, t), 0.0)
        x = self.activation(self.conv2(x))
        lens = (lens + 1) // 2
        x = x.masked_fill(_time_mask(lens, x.shape[2]), 0.0)
        x = self.activation(self.conv3(x))  # [B, C, T/2, F/4]
        batch, channels, t2, freq = x.shape
        x = x.permute(0, 2, 1, 3).reshape(batch, t2, channels * freq)
        return self.norm(self.out(x)), lens
