"""Zipformer (Yao et al., ICLR 2024) in plain PyTorch; k2 optional."""

from auden.models.encoders.zipformer.config import (
    PRESETS,
    ZipformerConfig,
    resolve_zipformer_config,
)
from auden.models.encoders.zipformer.encoder import ZipformerEncoder, zipformer_output_lengths

__all__ = [
    "PRESETS",
    "ZipformerConfig",
    "ZipformerEncoder",
    "resolve_zipformer_config",
    "zipformer_output_lengths",
]
