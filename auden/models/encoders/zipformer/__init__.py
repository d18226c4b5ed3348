"""Zipformer (Yao et al., "Zipformer: A faster and better encoder for ASR", ICLR 2024).

Our own plain-PyTorch implementation; k2 is optional (``use_k2_swoosh``) and never needed.

    100 Hz fbank -> ConvFrontEnd (50 Hz) -> 6 ZipformerStacks at 50/{1,2,4,8,4,2} Hz, each
    with learned downsampling, upsampling and a learned bypass -> widest-channel combination
    -> learned 2x downsampling -> 25 Hz frames, ``ceil(T / 4)`` of them.

Each ZipformerBlock computes relative-position attention weights once and shares them
between a non-linear attention module and two self-attention modules, around three
feed-forward modules (SwooshL), two convolution modules (SwooshR), BiasNorm and bypasses.

Left out, because they are training aids of the paper's large-scale runs rather than
parts of the model: ActivationBalancer and Whiten (gradient-shaping constraints),
ScaledLinear's per-layer initial scales (we shrink residual output projections instead),
layer dropout and the bypass-scale schedule, the feature-masking of ``encoder_unmasked_dim``,
the ConvNeXt layer of the front end, chunked/causal streaming, and the 8-bit derivative
storage of the swoosh kernels. The relative positional encoding follows the paper's idea
(log-compressed offsets through atan, then sin/cos), not icefall's exact formula.

``flavor: icefall`` (presets ``icefall-small`` / ``-medium`` / ``-large``) is icefall's
non-streaming Zipformer2 at inference instead: its ConvNeXt front end, positional
formula, norms, bypasses and downsampling, so that its released checkpoints load
(``auden import-icefall``, :mod:`auden.models.encoders.zipformer.icefall`).
"""

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
