"""The Zipformer block and a stack of blocks running at one frame rate (paper, figure 3)."""

from __future__ import annotations

import torch
from torch import nn

from auden.models.encoders.zipformer.attention import (
    CompactRelPositionalEncoding,
    IcefallRelPositionalEncoding,
    NonlinAttention,
    RelPositionAttentionWeights,
    SelfAttention,
)
from auden.models.encoders.zipformer.config import ZipformerConfig
from auden.models.encoders.zipformer.layers import (
    BiasNorm,
    Bypass,
    ConvolutionModule,
    Downsample,
    FeedForward,
    downsampled_lengths,
    upsample,
)


def padding_mask(lens: torch.Tensor, t: int) -> torch.Tensor:
    """[B, T] bool, True at padded frames."""
    return torch.arange(t, device=lens.device)[None, :] >= lens[:, None]


class ZipformerBlock(nn.Module):
    """Two half-blocks sharing one set of attention weights.

    ff1 -> nonlinear attention -> self-attention 1 -> conv 1 -> ff2 -> mid bypass ->
    self-attention 2 -> conv 2 -> ff3 -> BiasNorm -> bypass to the block input.
    """

    def __init__(self, cfg: ZipformerConfig, stack: int) -> None:
        super().__init__()
        dim, ff, heads = cfg.encoder_dims[stack], cfg.feedforward_dims[stack], cfg.num_heads[stack]
        kernel, k2 = cfg.cnn_kernel_sizes[stack], cfg.use_k2_swoosh
        icefall = cfg.flavor == "icefall"
        self.attention_weights = RelPositionAttentionWeights(
            dim, heads, cfg.query_head_dim, cfg.pos_head_dim, cfg.pos_dim,
            scale_query=not icefall, mask_value=-1000.0 if icefall else float("-inf"),
        )
        min_scale = None if icefall else 0.2
        self.feed_forward1 = FeedForward(dim, ff * 3 // 4, cfg.dropout, k2)
        self.nonlin_attention = NonlinAttention(dim, dim * 3 // 4)
        self.self_attention1 = SelfAttention(dim, heads, cfg.value_head_dim)
        self.conv1 = ConvolutionModule(dim, kernel, k2)
        self.feed_forward2 = FeedForward(dim, ff, cfg.dropout, k2)
        self.bypass_mid = Bypass(dim, min_scale=min_scale)
        self.self_attention2 = SelfAttention(dim, heads, cfg.value_head_dim)
        self.conv2 = ConvolutionModule(dim, kernel, k2)
        self.feed_forward3 = FeedForward(dim, ff * 5 // 4, cfg.dropout, k2)
        self.norm = BiasNorm(dim, eps=0.0 if icefall else 1e-5)
        self.bypass = Bypass(dim, min_scale=min_scale)

    def forward(
        self, x: torch.Tensor, pos_emb: torch.Tensor, pad_mask: torch.Tensor
    ) -> torch.Tensor:
        x_in = x
        weights = self.attention_weights(x, pos_emb, pad_mask)
        x = x + self.feed_forward1(x)
        x = x + self.nonlin_attention(x, weights)
        x = x + self.self_attention1(x, weights)
        x = x + self.conv1(x, pad_mask)
        x = x + self.feed_forward2(x)
        x = self.bypass_mid(x_in, x)
        x = x + self.self_attention2(x, weights)
        x = x + self.conv2(x, pad_mask)
        x = x + self.feed_forward3(x)
        return self.bypass(x_in, self.norm(x))


class ZipformerStack(nn.Module):
    """Blocks at ``1 / downsampling_factor`` of the 50 Hz rate, with learned down/upsampling.

    The stack's output is combined with its (50 Hz) input by a learned bypass; its
    length and frame rate are those of its input. In the icefall flavour only a
    downsampled stack has that bypass, and it is not clamped.
    """

    def __init__(self, cfg: ZipformerConfig, stack: int) -> None:
        super().__init__()
        icefall = cfg.flavor == "icefall"
        self.dim = cfg.encoder_dims[stack]
        self.factor = cfg.downsampling_factors[stack]
        self.downsample = Downsample(self.factor, icefall) if self.factor > 1 else None
        self.pos_encoding = (
            IcefallRelPositionalEncoding(cfg.pos_dim)
            if icefall
            else CompactRelPositionalEncoding(cfg.pos_dim)
        )
        self.blocks = nn.ModuleList(
            ZipformerBlock(cfg, stack) for _ in range(cfg.num_layers[stack])
        )
        has_bypass = not icefall or self.factor > 1
        self.bypass = Bypass(self.dim, None if icefall else 0.0) if has_bypass else None

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        x_in = x
        if self.downsample is not None:
            x, lens = self.downsample(x, lens)
        pos_emb = self.pos_encoding(x.shape[1], x.device, x.dtype)
        pad_mask = padding_mask(lens, x.shape[1])
        for block in self.blocks:
            x = block(x, pos_emb, pad_mask)
        if self.factor > 1:
            x = upsample(x, self.factor, x_in.shape[1])
        return x if self.bypass is None else self.bypass(x_in, x)


__all__ = ["ZipformerBlock", "ZipformerStack", "downsampled_lengths", "padding_mask"]
