"""The whole truth about a Zipformer encoder's shape, plus named presets.

Presets follow the paper (Yao et al., ICLR 2024, table 1: Zipformer-S/M/L), with ``tiny``
added for CPU tests and demos, and ``icefall-small`` / ``-medium`` / ``-large``: the same shapes
in the icefall flavour (icefall's released LibriSpeech encoders). A config is a preset name, a ``config.json`` path or folder,
a plain dict, or a :class:`ZipformerConfig`; :func:`resolve_zipformer_config` accepts all.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

FLAVORS = ("auden", "icefall")


@dataclass
class ZipformerConfig:
    """Per-stack tuples have one entry per encoder stack (six in the paper)."""

    num_mel_bins: int = 80
    downsampling_factors: tuple[int, ...] = (1, 2, 4, 8, 4, 2)
    num_layers: tuple[int, ...] = (2, 2, 3, 4, 3, 2)
    encoder_dims: tuple[int, ...] = (192, 256, 384, 512, 384, 256)
    feedforward_dims: tuple[int, ...] = (512, 768, 1024, 1536, 1024, 768)
    num_heads: tuple[int, ...] = (4, 4, 4, 8, 4, 4)
    cnn_kernel_sizes: tuple[int, ...] = (31, 31, 15, 15, 15, 31)
    query_head_dim: int = 32
    value_head_dim: int = 12
    pos_head_dim: int = 4
    pos_dim: int = 48
    frontend_channels: tuple[int, ...] = field(default_factory=lambda: (8, 32, 128))
    dropout: float = 0.1  # in the feed-forward modules
    # k2's fused swoosh kernels, used only when k2 is importable; pure torch otherwise.
    use_k2_swoosh: bool = False
    # "auden": our encoder, written from the paper. "icefall": computes what icefall's
    # non-streaming Zipformer2 (with its Conv2dSubsampling front end) computes at inference,
    # so that its released checkpoints load through `auden import-icefall`.
    flavor: str = "auden"

    def __post_init__(self) -> None:
        per_stack = ("downsampling_factors", "num_layers", "encoder_dims", "feedforward_dims",
                     "num_heads", "cnn_kernel_sizes")
        for name in (*per_stack, "frontend_channels"):
            setattr(self, name, tuple(int(v) for v in getattr(self, name)))
        n = len(self.downsampling_factors)
        for name in per_stack:
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"zipformer config '{name}' has {len(getattr(self, name))} entries but "
                    f"downsampling_factors has {n}; every per-stack tuple needs one per stack"
                )
        if n == 0:
            raise ValueError("zipformer config 'downsampling_factors' is empty")
        for k in self.cnn_kernel_sizes:
            if k % 2 == 0:
                raise ValueError(f"zipformer config 'cnn_kernel_sizes' must be odd, got {k}")
        if self.pos_dim % 2:
            raise ValueError(f"zipformer config 'pos_dim' must be even, got {self.pos_dim}")
        if len(self.frontend_channels) != 3:
            raise ValueError("zipformer config 'frontend_channels' needs exactly 3 entries")
        if min(self.downsampling_factors) < 1:
            raise ValueError("zipformer config 'downsampling_factors' must be >= 1")
        if self.flavor not in FLAVORS:
            raise ValueError(
                f"zipformer config 'flavor' is '{self.flavor}'; known: {list(FLAVORS)}"
            )
        if self.flavor == "icefall" and self.num_mel_bins < 7:
            raise ValueError(
                f"zipformer config 'num_mel_bins' is {self.num_mel_bins}; the icefall front "
                "end needs at least 7"
            )

    @property
    def output_dim(self) -> int:
        return max(self.encoder_dims)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "dict") -> ZipformerConfig:
        data = {k: v for k, v in dict(data).items() if k != "model_type"}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown zipformer config key(s) {unknown} in {source}")
        return cls(**data)


PRESETS: dict[str, dict[str, Any]] = {
    # A few M params: seconds per step on a laptop CPU; for tests and the offline demo.
    "tiny": dict(
        num_layers=(1, 1, 1, 1, 1, 1),
        encoder_dims=(96, 128, 160, 192, 160, 128),
        feedforward_dims=(256, 384, 512, 512, 512, 384),
        num_heads=(4, 4, 4, 4, 4, 4),
        cnn_kernel_sizes=(15, 15, 15, 15, 15, 15),
        query_head_dim=16,
        value_head_dim=12,
        pos_dim=24,
        frontend_channels=(8, 16, 32),
    ),
    # About 2M params: the fastest-learning CTC encoder on mini_en in our 10-minute CPU runs.
    "xs": dict(
        num_layers=(1, 1, 1, 1, 1, 1),
        encoder_dims=(64, 96, 128, 128, 128, 96),
        feedforward_dims=(192, 256, 384, 384, 384, 256),
        num_heads=(4, 4, 4, 4, 4, 4),
        cnn_kernel_sizes=(15, 15, 15, 15, 15, 15),
        query_head_dim=16,
        value_head_dim=8,
        pos_dim=24,
        frontend_channels=(4, 8, 16),
    ),
    # Zipformer-S of the paper.
    "small": dict(
        num_layers=(2, 2, 2, 2, 2, 2),
        encoder_dims=(192, 256, 256, 256, 256, 256),
        feedforward_dims=(512, 768, 768, 768, 768, 768),
        num_heads=(4, 4, 4, 8, 4, 4),
    ),
    # Zipformer-M of the paper (the dataclass defaults).
    "medium": dict(),
    # Zipformer-L of the paper.
    "large": dict(
        num_layers=(2, 2, 4, 5, 4, 2),
        encoder_dims=(192, 256, 512, 768, 512, 256),
        feedforward_dims=(512, 768, 1536, 2048, 1536, 768),
        num_heads=(4, 4, 4, 8, 4, 4),
    ),
}
# icefall's released LibriSpeech encoders have the paper's shapes: the same presets, its flavour.
for _size in ("small", "medium", "large"):
    PRESETS[f"icefall-{_size}"] = dict(PRESETS[_size], flavor="icefall")


def resolve_zipformer_config(spec: str | Path | dict | ZipformerConfig) -> ZipformerConfig:
    """A preset name, a config.json (or a folder holding one), a dict, or a config."""
    if isinstance(spec, ZipformerConfig):
        return spec
    if isinstance(spec, dict):
        return ZipformerConfig.from_dict(spec)
    if not isinstance(spec, (str, Path)):
        # Hydra's DictConfig and other mappings.
        return ZipformerConfig.from_dict(dict(spec))
    if str(spec) in PRESETS:
        return ZipformerConfig(**PRESETS[str(spec)])
    path = Path(spec)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise ValueError(
            f"zipformer config '{spec}' is neither a preset {sorted(PRESETS)} nor a config.json"
        )
    data = json.loads(path.read_text())
    if data.get("model_type") == "zipformer_ctc":
        data = data["encoder"]["config"]
        if not isinstance(data, dict):
            return resolve_zipformer_config(data)
    return ZipformerConfig.from_dict(data, source=str(path))
