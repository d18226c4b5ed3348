"""Attention in the Zipformer block: weights computed once, used by three modules.

:class:`RelPositionAttentionWeights` computes multi-head attention weights with a
relative positional term; :class:`SelfAttention` (twice per block) and
:class:`NonlinAttention` reuse them with their own value projections (paper, section 3.2).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from auden.models.encoders.zipformer.layers import residual_linear


class CompactRelPositionalEncoding(nn.Module):
    """Fixed features of the relative offset ``k - q`` between a key and a query frame.

    Offsets are compressed logarithmically, then squashed by ``atan`` into (-pi/2, pi/2)
    before sin/cos features at integer frequencies, so nearby offsets are finely resolved
    and far ones coarsely, with no dependence on the sequence length. Returns
    ``[2T-1, pos_dim]`` for offsets ``-(T-1) .. T-1``.
    """

    def __init__(self, pos_dim: int, length_factor: float = 1.0) -> None:
        super().__init__()
        self.pos_dim = pos_dim
        self.length_factor = length_factor

    def forward(self, length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        offsets = torch.arange(-(length - 1), length, device=device, dtype=torch.float64)
        c = float(self.pos_dim)
        compressed = offsets.sign() * c * torch.log1p(offsets.abs() / c)
        angle = torch.atan(compressed / (self.length_factor * c))
        freqs = torch.arange(1, self.pos_dim // 2 + 1, device=device, dtype=torch.float64)
        angles = angle[:, None] * freqs[None, :]
        return torch.cat([angles.cos(), angles.sin()], dim=-1).to(dtype)


class IcefallRelPositionalEncoding(nn.Module):
    """icefall's variant of the same idea, which its trained weights expect.

    Offsets are compressed by ``c * sign(x) * log((|x| + c) / c)`` with ``c = sqrt(pos_dim)``,
    mapped through ``atan(. / (pos_dim / 2pi))``, and turned into cos/sin pairs interleaved
    (cos in even columns, sin in odd) at frequencies ``1 .. pos_dim/2``; the last column is
    a constant 1 (a bias for the position term). Computed in float32, as icefall does.
    """

    def __init__(self, pos_dim: int) -> None:
        super().__init__()
        self.pos_dim = pos_dim

    def forward(self, length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        offsets = torch.arange(-(length - 1), length, device=device).to(torch.float32)[:, None]
        c = self.pos_dim**0.5
        compressed = c * offsets.sign() * ((offsets.abs() + c).log() - math.log(c))
        angle = (compressed / (self.pos_dim / (2.0 * math.pi))).atan()
        freqs = 1 + torch.arange(self.pos_dim // 2, device=device)
        pe = torch.zeros(2 * length - 1, self.pos_dim, device=device)
        pe[:, 0::2] = (angle * freqs).cos()
        pe[:, 1::2] = (angle * freqs).sin()
        pe[:, -1] = 1.0
        return pe.to(dtype)


class RelPositionAttentionWeights(nn.Module):
    """Softmax(q·k + p·P[k-q]) per head, with padded keys masked: ``[H, B, T, T]``.

    ``scale_query=False`` and ``mask_value=-1000`` are icefall's choices: its trained
    projections carry the ``1/sqrt(d)`` themselves, and a finite mask keeps a fully
    masked row from becoming NaN.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        query_head_dim: int,
        pos_head_dim: int,
        pos_dim: int,
        scale_query: bool = True,
        mask_value: float = float("-inf"),
    ) -> None:
        super().__init__()
        self.query_scale = query_head_dim**-0.5 if scale_query else 1.0
        self.mask_value = mask_value
        self.num_heads = num_heads
        self.query_head_dim = query_head_dim
        self.pos_head_dim = pos_head_dim
        self.in_proj = nn.Linear(dim, num_heads * (2 * query_head_dim + pos_head_dim))
        self.pos_proj = nn.Linear(pos_dim, num_heads * pos_head_dim, bias=False)

    def forward(
        self, x: torch.Tensor, pos_emb: torch.Tensor, pad_mask: torch.Tensor
    ) -> torch.Tensor:
        batch, t, _ = x.shape
        h, qd, pd = self.num_heads, self.query_head_dim, self.pos_head_dim
        q, k, p = self.in_proj(x).split([h * qd, h * qd, h * pd], dim=-1)
        q = q.view(batch, t, h, qd).permute(2, 0, 1, 3)
        if self.query_scale != 1.0:
            q = q * self.query_scale
        k = k.view(batch, t, h, qd).permute(2, 0, 3, 1)
        p = p.view(batch, t, h, pd).permute(2, 0, 1, 3)
        scores = torch.matmul(q, k)  # [H, B, T, T]

        pos = self.pos_proj(pos_emb).view(2 * t - 1, h, pd).permute(1, 2, 0)  # [H, pd, 2T-1]
        pos_scores = torch.matmul(p, pos.unsqueeze(1))  # [H, B, T, 2T-1]
        ar = torch.arange(t, device=x.device)
        offset_index = (ar[None, :] - ar[:, None] + (t - 1)).expand(h, batch, t, t)
        scores = scores + pos_scores.gather(-1, offset_index)

        scores = scores.masked_fill(pad_mask[None, :, None, :], self.mask_value)
        # No dropout on the [H, B, T, T] weights: on a CPU it costs more than it gives.
        return scores.softmax(dim=-1)


class SelfAttention(nn.Module):
    """Values from this module's own projection, mixed by shared attention weights."""

    def __init__(self, dim: int, num_heads: int, value_head_dim: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.value_head_dim = value_head_dim
        self.in_proj = nn.Linear(dim, num_heads * value_head_dim)
        self.out_proj = residual_linear(num_heads * value_head_dim, dim)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        batch, t, _ = x.shape
        h, vd = self.num_heads, self.value_head_dim
        v = self.in_proj(x).view(batch, t, h, vd).permute(2, 0, 1, 3)
        out = torch.matmul(weights, v).permute(1, 2, 0, 3).reshape(batch, t, h * vd)
        return self.out_proj(out)


class NonlinAttention(nn.Module):
    """``out((A @ (v * tanh(s))) * y)`` with A the first head's weights (paper, eq. 4)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.in_proj = nn.Linear(dim, 3 * hidden_dim)
        self.out_proj = residual_linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        s, v, y = self.in_proj(x).chunk(3, dim=-1)
        v = torch.matmul(weights[0], v * torch.tanh(s))
        return self.out_proj(v * y)
