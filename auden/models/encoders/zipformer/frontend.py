"""Convolutional front ends (ours and icefall's): 100 Hz fbank -> 50 Hz frames."""

from __future__ import annotations

import torch
from torch import nn

from auden.models.encoders.zipformer.activations import SwooshL, SwooshR
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


class ConvNeXt(nn.Module):
    """icefall's front-end ConvNeXt layer: 7x7 depthwise, 1x1 up 3x, SwooshL, 1x1 down, residual.

    Frames past each clip's end are zeroed before the depthwise convolution, which is the
    zero padding the clip would see alone, so valid frames do not depend on the batch.
    """

    def __init__(
        self, channels: int, hidden_ratio: int = 3, kernel_size: int = 7, use_k2: bool = False
    ) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            channels, channels, kernel_size, padding=kernel_size // 2, groups=channels
        )
        self.pointwise1 = nn.Conv2d(channels, channels * hidden_ratio, 1)
        self.activation = SwooshL(use_k2)
        self.pointwise2 = nn.Conv2d(channels * hidden_ratio, channels, 1)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(x.masked_fill(_time_mask(lens, x.shape[2]), 0.0))
        return x + self.pointwise2(self.activation(self.pointwise1(y)))


class IcefallConvFrontEnd(nn.Module):
    """icefall's Conv2dSubsampling: 100 Hz fbank -> ``(T - 7) // 2`` frames at 50 Hz.

    Three 3x3 convolutions without padding in time (the first pads frequency by one, the
    second strides 2 in both, the third 2 in frequency), SwooshR after each, the ConvNeXt
    layer, a linear map of ``channels * freq`` inputs and a BiasNorm without epsilon.
    Unpadded convolutions see only the clip's own frames, so they are batch-invariant as
    they are; the ConvNeXt layer masks what lies past each clip's end.
    """

    def __init__(
        self, num_mel_bins: int, channels: tuple[int, ...], out_dim: int, use_k2: bool = False
    ) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.conv1 = nn.Conv2d(1, c1, 3, padding=(0, 1))
        self.conv2 = nn.Conv2d(c1, c2, 3, stride=2)
        self.conv3 = nn.Conv2d(c2, c3, 3, stride=(1, 2))
        self.activation = SwooshR(use_k2)
        self.convnext = ConvNeXt(c3, use_k2=use_k2)
        freq = (((num_mel_bins - 1) // 2) - 1) // 2
        self.out = nn.Linear(c3 * freq, out_dim)
        self.norm = BiasNorm(out_dim, eps=0.0)

    def forward(
        self, features: torch.Tensor, lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = features.unsqueeze(1)  # [B, 1, T, F]
        x = self.activation(self.conv1(x))
        x = self.activation(self.conv2(x))
        x = self.activation(self.conv3(x))  # [B, C, (T-7)//2, F']
        lens = (lens - 7) // 2
        x = self.convnext(x, lens)
        batch, channels, t2, freq = x.shape
        x = x.permute(0, 2, 1, 3).reshape(batch, t2, channels * freq)
        return self.norm(self.out(x)), lens
