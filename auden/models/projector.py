"""Projectors: encoder frames -> fewer, LLM-wide frames that replace the audio token.

Two kinds, both downsampling time by ``ds_rate``:

- ``"mlp"`` (default): stack ``ds_rate`` consecutive frames into one vector, then a
  two-layer MLP to the LLM width. Zipformer (25 Hz) with ``ds_rate=4`` and Whisper
  (50 Hz) with ``ds_rate=8`` both give 6.25 audio tokens per second.
- ``"conv"``: a strided ``Conv1d`` (kernel = stride = ``ds_rate``), then the same MLP.

**Remainder rule.** A clip of ``n`` encoder frames gives ``ceil(n / ds_rate)`` projected
frames: a trailing partial group is completed with zero frames, so the end of an
utterance is never dropped, and a clip of at least one frame always yields a token.
Frames past a clip's length are zeroed first, so a clip projects the same alone or in a
batch. ``projected_lengths`` gives these numbers without running the projector::

    projector = Projector(ProjectorConfig(ds_rate=4), encoder_dim=512, llm_dim=896)
    frames, lens = projector(enc_out.frames, enc_out.lens)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

PROJECTOR_TYPES = ("mlp", "conv")


@dataclass
class ProjectorConfig:
    """``type``: "mlp" or "conv"; ``hidden_size``: MLP width (0 = the LLM's width)."""

    type: str = "mlp"
    ds_rate: int = 4
    hidden_size: int = 0
    activation: str = "gelu"


def projected_lengths(lens: torch.Tensor, ds_rate: int) -> torch.Tensor:
    """Number of projected frames of clips with ``lens`` encoder frames: ceil(n / ds_rate)."""
    return torch.div(lens + ds_rate - 1, ds_rate, rounding_mode="floor")


_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


class Projector(nn.Module):
    """Downsample encoder frames by ``ds_rate`` and map them to the LLM's width."""

    def __init__(self, config: ProjectorConfig, encoder_dim: int, llm_dim: int) -> None:
        super().__init__()
        if config.type not in PROJECTOR_TYPES:
            raise ValueError(
                f"unknown projector type '{config.type}' (model.projector.type); "
                f"known: {list(PROJECTOR_TYPES)}"
            )
        if config.ds_rate < 1:
            raise ValueError(f"model.projector.ds_rate must be >= 1, got {config.ds_rate}")
        if config.activation not in _ACTIVATIONS:
            raise ValueError(
                f"unknown projector activation '{config.activation}'; known: {sorted(_ACTIVATIONS)}"
            )
        self.config = config
        self.ds_rate = config.ds_rate
        hidden = config.hidden_size or llm_dim
        if config.type == "conv":
            self.downsample = nn.Conv1d(
                encoder_dim, hidden, kernel_size=config.ds_rate, stride=config.ds_rate
            )
            mlp_in = hidden
        else:
            self.downsample = None
            mlp_in = encoder_dim * config.ds_rate
        self.mlp = nn.Sequential(
            nn.Linear(mlp_in, hidden),
            _ACTIVATIONS[config.activation](),
            nn.Linear(hidden, llm_dim),
        )

    def output_lengths(self, lens: torch.Tensor) -> torch.Tensor:
        return projected_lengths(lens, self.ds_rate)

    def forward(
        self, frames: torch.Tensor, lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, D]`` frames with ``lens[B]`` -> ``[B, ceil(T/ds), llm_dim]`` and new lens."""
        b, t, d = frames.shape
        lens = lens.to(frames.device)
        valid = torch.arange(t, device=frames.device)[None, :] < lens[:, None]
        x = frames.masked_fill(~valid[:, :, None], 0.0)
        out_lens = self.output_lengths(lens)
        t_out = -(-t // self.ds_rate)
        x = nn.functional.pad(x, (0, 0, 0, t_out * self.ds_rate - t))
        if self.downsample is None:
            x = x.reshape(b, t_out, self.ds_rate * d)
        else:
            x = self.downsample(x.transpose(1, 2)).transpose(1, 2)
        x = self.mlp(x)
        out_valid = torch.arange(t_out, device=x.device)[None, :] < out_lens[:, None]
        return x.masked_fill(~out_valid[:, :, None], 0.0), out_lens
