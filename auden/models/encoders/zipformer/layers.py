"""Zipformer building blocks that are not attention: norm, bypass, feed-forward, conv, resampling.

Every module that mixes frames over time (convolution, downsampling) takes the key-padding
mask or the lengths, and zeroes or ignores padded frames, so that a clip padded inside a
batch gives the same valid frames as the clip alone.
"""

from __future__ import annotations

import torch
from torch import nn

from auden.models.encoders.zipformer.activations import SwooshL, SwooshR


def residual_linear(in_dim: int, out_dim: int, scale: float = 0.25) -> nn.Linear:
    """A Linear whose initial weights are shrunk, so each residual branch starts small."""
    linear = nn.Linear(in_dim, out_dim)
    with torch.no_grad():
        linear.weight.mul_(scale)
        linear.bias.zero_()
    return linear


class BiasNorm(nn.Module):
    """``x / RMS(x - b) * exp(g)``: LayerNorm without centring, keeping length information.

    The paper's replacement for LayerNorm (section 3.4): the learned bias ``b`` makes the
    norm of ``x`` itself still carry information, and a single learned log-scale ``g``.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.tensor(1.0))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inv_rms = ((x - self.bias).pow(2).mean(dim=-1, keepdim=True) + self.eps).rsqrt()
        return x * inv_rms * self.log_scale.exp()


class Bypass(nn.Module):
    """Learned per-channel interpolation ``x_in + c * (x_out - x_in)``, c clamped to [min, 1].

    ``min_scale=None`` leaves c unclamped: icefall clamps only while training, so its
    released scales can lie outside [0.2, 1] and are used as they are.
    """

    def __init__(self, dim: int, min_scale: float | None = 0.0, init: float = 0.5) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim,), init))
        self.min_scale = min_scale

    def forward(self, x_in: torch.Tensor, x_out: torch.Tensor) -> torch.Tensor:
        scale = self.scale if self.min_scale is None else self.scale.clamp(self.min_scale, 1.0)
        return x_in + scale * (x_out - x_in)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, dropout: float, use_k2: bool = False) -> None:
        super().__init__()
        self.in_proj = nn.Linear(dim, hidden_dim)
        self.activation = SwooshL(use_k2)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = residual_linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.dropout(self.activation(self.in_proj(x))))


class ConvolutionModule(nn.Module):
    """Gated pointwise conv, depthwise conv over time, SwooshR, pointwise conv.

    Padded frames are zeroed right before the depthwise convolution, which is exactly
    what the convolution's own zero padding does for a clip at the end of its length.
    """

    def __init__(self, dim: int, kernel_size: int, use_k2: bool = False) -> None:
        super().__init__()
        self.in_proj = nn.Linear(dim, 2 * dim)
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.activation = SwooshR(use_k2)
        self.out_proj = residual_linear(dim, dim)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        x, gate = self.in_proj(x).chunk(2, dim=-1)
        x = x * torch.sigmoid(gate)
        x = x.masked_fill(pad_mask.unsqueeze(-1), 0.0)
        x = self.depthwise(x.transpose(1, 2)).transpose(1, 2)
        return self.out_proj(self.activation(x))


def downsampled_lengths(lens: torch.Tensor, factor: int) -> torch.Tensor:
    """``ceil(lens / factor)``: a partial last group still makes a frame."""
    return (lens + factor - 1) // factor


class Downsample(nn.Module):
    """Learned weighted average of each group of ``factor`` consecutive frames.

    The group weights are a softmax over learned logits. The last, partial group of a
    clip never sees padding: by default its weights are renormalised over its valid
    frames; with ``repeat_last`` (icefall's way) it is completed with copies of the clip's
    last frame, which is what icefall does for a clip alone. Output length ``ceil(T / factor)``.
    """

    def __init__(self, factor: int, repeat_last: bool = False) -> None:
        super().__init__()
        self.factor = factor
        self.repeat_last = repeat_last
        self.logits = nn.Parameter(torch.zeros(factor))

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.factor
        batch, t, dim = x.shape
        t_out = (t + d - 1) // d
        if self.repeat_last:
            frame = torch.arange(t_out * d, device=x.device)[None, :]
            index = torch.minimum(frame, (lens - 1)[:, None]).unsqueeze(-1).expand(-1, -1, dim)
            x = x.gather(1, index).view(batch, t_out, d, dim)
            weights = self.logits.softmax(dim=0)[:, None]
            return (x * weights).sum(dim=2), downsampled_lengths(lens, d)
        x = nn.functional.pad(x, (0, 0, 0, t_out * d - t))
        valid = torch.arange(t_out * d, device=x.device)[None, :] < lens[:, None]
        x = x.masked_fill(~valid.unsqueeze(-1), 0.0).view(batch, t_out, d, dim)
        weights = self.logits.softmax(dim=0)[None, None, :] * valid.view(batch, t_out, d)
        weights = weights / weights.sum(dim=-1, keepdim=True).clamp(min=1e-20)
        return (x * weights.unsqueeze(-1)).sum(dim=2), downsampled_lengths(lens, d)


def upsample(x: torch.Tensor, factor: int, length: int) -> torch.Tensor:
    """Repeat every frame ``factor`` times and cut to ``length`` frames."""
    return x.repeat_interleave(factor, dim=1)[:, :length]


def convert_num_channels(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Truncate or zero-pad the channel dimension, as the paper does between stacks."""
    have = x.shape[-1]
    if have == dim:
        return x
    if have > dim:
        return x[..., :dim]
    return nn.functional.pad(x, (0, dim - have))
