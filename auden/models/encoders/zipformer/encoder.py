"""ZipformerEncoder: the paper's encoder behind auden's :class:`AudioEncoder` interface.

``flavor: icefall`` builds icefall's Zipformer2 instead (its front end, positional
encoding, attention scaling, norms, bypasses and downsampling), which computes, for each
clip of a padded batch, what icefall computes for that clip alone (icefall itself lets
padding leak into the last frames of shorter clips; auden masks it).

Example::

    encoder = ZipformerEncoder(resolve_zipformer_config("tiny"))
    out = encoder(features, feature_lens)  # features [B, T, 80] at 100 Hz
    assert (out.lens == encoder.output_lengths(feature_lens)).all()  # 25 Hz
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from auden.audio.features import FeatureSpec
from auden.models.encoders.base import AudioEncoder
from auden.models.encoders.zipformer.block import ZipformerStack, padding_mask
from auden.models.encoders.zipformer.config import ZipformerConfig, resolve_zipformer_config
from auden.models.encoders.zipformer.frontend import ConvFrontEnd, IcefallConvFrontEnd
from auden.models.encoders.zipformer.layers import Downsample, convert_num_channels
from auden.models.folder import read_model_folder, write_model_folder
from auden.types import EncoderOutput

logger = logging.getLogger(__name__)


def zipformer_output_lengths(feature_lens: torch.Tensor, flavor: str = "auden") -> torch.Tensor:
    """Exact 25 Hz output length of a 100 Hz input of ``T`` frames: ``ceil(T / 4)``.

    The front end gives ``T50 = ceil(T / 2)`` (stride-2 convolution, padding 1); every
    stack keeps ``T50`` (it downsamples to ``ceil(T50 / d)`` and upsamples back); the final
    learned 2x downsampling gives ``ceil(T50 / 2) = ceil(T / 4)``. icefall's unpadded front
    end gives ``T50 = (T - 7) // 2``, hence ``((T - 7) // 2 + 1) // 2`` (``T >= 9``).
    """
    if flavor == "icefall":
        return ((feature_lens - 7) // 2 + 1) // 2
    return (feature_lens + 3) // 4


def min_input_frames(flavor: str) -> int:
    """The shortest input that yields one output frame."""
    return 9 if flavor == "icefall" else 1


def _full_dim_output(outputs: list[torch.Tensor]) -> torch.Tensor:
    """The last stack's output, widened with the trailing channels of the latest wider stack."""
    out = outputs[-1]
    for earlier in reversed(outputs[:-1]):
        if earlier.shape[-1] > out.shape[-1]:
            out = torch.cat([out, earlier[..., out.shape[-1] :]], dim=-1)
    return out


class ZipformerEncoder(AudioEncoder):
    """100 Hz fbank ``[B, T, F]`` -> 25 Hz frames ``[B, ceil(T/4), max(encoder_dims)]``."""

    model_type = "zipformer"
    lora_targets = ("in_proj", "out_proj")

    def __init__(self, config: ZipformerConfig | str | dict) -> None:
        super().__init__()
        self.config = resolve_zipformer_config(config)
        cfg = self.config
        icefall = cfg.flavor == "icefall"
        frontend = IcefallConvFrontEnd if icefall else ConvFrontEnd
        self.frontend = frontend(
            cfg.num_mel_bins, cfg.frontend_channels, cfg.encoder_dims[0], cfg.use_k2_swoosh
        )
        self.stacks = nn.ModuleList(
            ZipformerStack(cfg, i) for i in range(len(cfg.downsampling_factors))
        )
        self.output_downsample = Downsample(2, repeat_last=icefall)

    @property
    def output_dim(self) -> int:
        return self.config.output_dim

    @property
    def frame_rate(self) -> float:
        return 25.0

    def layers(self) -> list[nn.Module]:
        # Each stack's blocks in order; the final 2x downsampling counts as the last layer.
        blocks = [block for stack in self.stacks for block in stack.blocks]
        return blocks + [self.output_downsample]
    @property
    def features(self) -> FeatureSpec:
        return FeatureSpec("fbank", self.config.num_mel_bins)

    def output_lengths(self, feature_lens: torch.Tensor) -> torch.Tensor:
        return zipformer_output_lengths(feature_lens, self.config.flavor)

    def forward(self, features: torch.Tensor, feature_lens: torch.Tensor) -> EncoderOutput:
        if features.dim() != 3 or features.shape[-1] != self.config.num_mel_bins:
            raise ValueError(
                f"zipformer expects features [B, T, {self.config.num_mel_bins}], "
                f"got {tuple(features.shape)}"
            )
        if feature_lens.shape[0] != features.shape[0]:
            raise ValueError(
                f"feature_lens has {feature_lens.shape[0]} entries for {features.shape[0]} rows"
            )
        shortest = min_input_frames(self.config.flavor)
        if int(feature_lens.min()) < shortest or int(feature_lens.max()) > features.shape[1]:
            raise ValueError(
                f"feature_lens must lie in [{shortest}, {features.shape[1]}] for a "
                f"{self.config.flavor}-flavour zipformer, got {feature_lens.tolist()}"
            )
        feature_lens = feature_lens.to(device=features.device, dtype=torch.int64)
        x, lens = self.frontend(features, feature_lens)
        outputs = []
        for stack in self.stacks:
            x = stack(convert_num_channels(x, stack.dim), lens)
            outputs.append(x)
        x, lens = self.output_downsample(_full_dim_output(outputs), lens)
        x = x.masked_fill(padding_mask(lens, x.shape[1]).unsqueeze(-1), 0.0)
        return EncoderOutput(frames=x, lens=lens)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(self, folder: str | Path) -> Path:
        config = {"model_type": self.model_type, **self.config.to_dict()}
        return write_model_folder(folder, config, self.state_dict())

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> ZipformerEncoder:
        """Load a zipformer folder, or the encoder of a ``zipformer_ctc`` model folder."""
        config, state = read_model_folder(folder)
        model_type = config.get("model_type")
        if model_type == "zipformer_ctc":
            zipformer_config = resolve_zipformer_config(config["encoder"]["config"])
            state = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
        elif model_type == cls.model_type:
            zipformer_config = ZipformerConfig.from_dict(config, source=f"{folder}/config.json")
        else:
            raise ValueError(
                f"'{folder}' holds model_type '{model_type}', not 'zipformer' or 'zipformer_ctc'"
            )
        encoder = cls(zipformer_config)
        encoder.load_state_dict(state)
        logger.info("loaded zipformer encoder (%d params) from %s", encoder.num_params(), folder)
        return encoder
