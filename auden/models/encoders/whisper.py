"""Whisper's audio encoder (transformers ``WhisperEncoder``) behind auden's encoder interface.

Whisper features (``WhisperFbank``, 100 frames/s, 80 or 128 bins) go in; 50 Hz frames come
out, one per two input frames: ``out_len = ceil(in_len / 2)`` from the stride-2 conv.

Pretrained Whisper always sees 30 s (3000 frames) of input. Here a clip shorter than
that is *not* padded by default: the sinusoidal position embeddings are taken for the
clip's own length and padded rows of a batch are masked out of attention, so a clip gives
the same frames alone or in any batch and a 7 s clip costs 350 frames, not 1500. With
``pad_to_30s=True`` every clip is padded to 3000 frames (with Whisper's log-mel floor,
see :func:`whisper_pad_value`) and run through transformers' encoder unchanged, which
reproduces pretrained Whisper exactly::

    encoder = WhisperEncoder("tiny-test")                    # a preset, random weights
    encoder = WhisperEncoder.from_pretrained("openai-whisper-small")   # encoder weights only
    out = encoder(features, feature_lens)                    # EncoderOutput, 50 Hz
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn
from transformers import WhisperConfig
from transformers.models.whisper import modeling_whisper

from auden.audio.features import FeatureSpec
from auden.models.encoders.base import AudioEncoder
from auden.models.folder import write_model_folder
from auden.types import EncoderOutput

logger = logging.getLogger(__name__)

# Encoder sizes of the released Whisper models, and a tiny one for tests.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny-test": dict(d_model=64, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128),
    "tiny": dict(d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536),
    "base": dict(d_model=512, encoder_layers=6, encoder_attention_heads=8, encoder_ffn_dim=2048),
    "small": dict(d_model=768, encoder_layers=12, encoder_attention_heads=12, encoder_ffn_dim=3072),
    "medium": dict(
        d_model=1024, encoder_layers=24, encoder_attention_heads=16, encoder_ffn_dim=4096
    ),
    "large-v2": dict(
        d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120
    ),
    "large-v3": dict(
        d_model=1280,
        encoder_layers=32,
        encoder_attention_heads=20,
        encoder_ffn_dim=5120,
        num_mel_bins=128,
    ),
}

# Where the encoder's weights sit in the folders we accept, tried in this order.
_WEIGHT_PREFIXES = ("model.encoder.", "encoder.")


def whisper_pad_value(features: torch.Tensor, feature_lens: torch.Tensor) -> torch.Tensor:
    """Per-clip value of Whisper's padding frames, ``[B]``.

    Whisper pads the waveform with zeros to 30 s; after its log-mel normalisation
    ``(max(log10 mel, max - 8) + 4) / 4`` those frames sit exactly at the clip's floor,
    i.e. ``max over the clip's valid frames - 2``.
    """
    t = features.shape[1]
    valid = torch.arange(t, device=features.device)[None, :] < feature_lens[:, None]
    masked = features.masked_fill(~valid[:, :, None], float("-inf"))
    return masked.amax(dim=(1, 2)) - 2.0


def resolve_whisper_config(spec: str | Path | dict | WhisperConfig) -> WhisperConfig:
    """A preset name, a config.json (or a folder holding one), a dict, or a WhisperConfig."""
    if isinstance(spec, WhisperConfig):
        return spec
    if isinstance(spec, (str, Path)):
        if str(spec) in PRESETS:
            return WhisperConfig(**PRESETS[str(spec)])
        path = Path(spec)
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file():
            raise ValueError(
                f"whisper config '{spec}' is neither a preset {sorted(PRESETS)} nor a config.json"
            )
        spec = json.loads(path.read_text())
    data = {k: v for k, v in dict(spec).items() if k != "model_type"}
    return WhisperConfig(**data)


class WhisperEncoder(AudioEncoder):
    """Whisper features ``[B, T, F]`` -> 50 Hz frames ``[B, ceil(T/2), d_model]``."""

    model_type = "whisper"
    lora_targets = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")

    def __init__(
        self, config: str | Path | dict | WhisperConfig, pad_to_30s: bool | None = None
    ) -> None:
        super().__init__()
        self.config = resolve_whisper_config(config)
        if pad_to_30s is not None:
            self.config.pad_to_30s = pad_to_30s
        self.config.pad_to_30s = bool(getattr(self.config, "pad_to_30s", False))
        self.encoder = modeling_whisper.WhisperEncoder(self.config)

    @property
    def pad_to_30s(self) -> bool:
        return self.config.pad_to_30s

    @property
    def output_dim(self) -> int:
        return self.config.d_model

    @property
    def frame_rate(self) -> float:
        return 50.0

    def layers(self) -> list[nn.Module]:
        return [*self.encoder.layers, self.encoder.layer_norm]

    @property
    def num_mel_bins(self) -> int:
        return self.config.num_mel_bins

    @property
    def features(self) -> FeatureSpec:
        return FeatureSpec("whisper_fbank", self.num_mel_bins, self.pad_to_30s)

    @property
    def max_input_frames(self) -> int:
        return self.config.max_source_positions * 2

    def output_lengths(self, feature_lens: torch.Tensor) -> torch.Tensor:
        # conv2: kernel 3, stride 2, padding 1 -> floor((L - 1) / 2) + 1 = ceil(L / 2).
        return torch.div(feature_lens + 1, 2, rounding_mode="floor")

    def forward(self, features: torch.Tensor, feature_lens: torch.Tensor) -> EncoderOutput:
        self._check_input(features, feature_lens)
        feature_lens = feature_lens.to(device=features.device, dtype=torch.int64)
        out_lens = self.output_lengths(feature_lens)
        if self.pad_to_30s:
            return EncoderOutput(frames=self._forward_padded(features, feature_lens), lens=out_lens)
        return EncoderOutput(frames=self._forward_unpadded(features, feature_lens), lens=out_lens)

    def _check_input(self, features: torch.Tensor, feature_lens: torch.Tensor) -> None:
        if features.dim() != 3 or features.shape[-1] != self.num_mel_bins:
            raise ValueError(
                f"whisper expects features [B, T, {self.num_mel_bins}], got {tuple(features.shape)}"
            )
        if feature_lens.shape[0] != features.shape[0]:
            raise ValueError(
                f"feature_lens has {feature_lens.shape[0]} entries for {features.shape[0]} rows"
            )
        if int(feature_lens.min()) < 1 or int(feature_lens.max()) > features.shape[1]:
            raise ValueError(
                f"feature_lens must lie in [1, {features.shape[1]}], got {feature_lens.tolist()}"
            )
        if int(feature_lens.max()) > self.max_input_frames:
            raise ValueError(
                f"whisper takes at most {self.max_input_frames} frames "
                f"({self.max_input_frames / 100:.0f} s), got {int(feature_lens.max())}"
            )

    def _forward_padded(self, features: torch.Tensor, feature_lens: torch.Tensor) -> torch.Tensor:
        """Pretrained Whisper's path: pad each clip to 3000 frames with its floor value."""
        b, _, f = features.shape
        pad = whisper_pad_value(features, feature_lens)
        padded = pad[:, None, None].expand(b, self.max_input_frames, f).clone()
        valid = (
            torch.arange(features.shape[1], device=features.device)[None, :] < feature_lens[:, None]
        )
        t = min(features.shape[1], self.max_input_frames)
        padded[:, :t] = torch.where(valid[:, :t, None], features[:, :t], padded[:, :t])
        hidden = self.encoder(input_features=padded.transpose(1, 2)).last_hidden_state
        return hidden

    def _forward_unpadded(self, features: torch.Tensor, feature_lens: torch.Tensor) -> torch.Tensor:
        """The same layers on the batch's own length; padding never reaches a valid frame."""
        enc = self.encoder
        t_in = features.shape[1]
        in_valid = torch.arange(t_in, device=features.device)[None, :] < feature_lens[:, None]
        # Zero input padding and conv1's output past each clip's end: conv2 then sees what it
        # sees at the end of a lone clip (its own zero padding).
        x = features.masked_fill(~in_valid[:, :, None], 0.0).transpose(1, 2)
        x = nn.functional.gelu(enc.conv1(x))
        x = x.masked_fill(~in_valid[:, None, :], 0.0)
        x = nn.functional.gelu(enc.conv2(x)).transpose(1, 2)
        t_out = x.shape[1]
        x = x + enc.embed_positions.weight[:t_out].to(x.dtype)
        x = nn.functional.dropout(x, p=enc.dropout, training=self.training)

        out_valid = (
            torch.arange(t_out, device=x.device)[None, :]
            < self.output_lengths(feature_lens)[:, None]
        )
        mask = torch.zeros(out_valid.shape, dtype=x.dtype, device=x.device)
        mask = mask.masked_fill(~out_valid, torch.finfo(x.dtype).min)[:, None, None, :]
        for layer in enc.layers:
            if self.training and enc.layerdrop > 0.0 and torch.rand([]) < enc.layerdrop:
                continue
            x = layer(x, mask)
        x = enc.layer_norm(x)
        return x.masked_fill(~out_valid[:, :, None], 0.0)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``config.json`` (model_type "whisper") and ``model.safetensors``."""
        config = {"model_type": self.model_type, **self.config.to_dict()}
        return write_model_folder(folder, config, self.state_dict())

    @classmethod
    def from_pretrained(cls, folder: str | Path, pad_to_30s: bool | None = None) -> WhisperEncoder:
        """Load an auden Whisper encoder folder or a transformers Whisper model folder.

        Only the encoder's weights are read; a decoder, if present, is ignored.
        """
        folder = Path(folder)
        encoder = cls(folder, pad_to_30s=pad_to_30s)
        state = _read_weights(folder)
        for prefix in _WEIGHT_PREFIXES:
            picked = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            if picked:
                break
        else:
            raise ValueError(
                f"'{folder}' has no Whisper encoder weights (keys starting with "
                f"{' or '.join(repr(p) for p in _WEIGHT_PREFIXES)})"
            )
        missing, unexpected = encoder.encoder.load_state_dict(picked, strict=False)
        # Old checkpoints may omit the (fixed, sinusoidal) position table.
        missing = [k for k in missing if k != "embed_positions.weight"]
        if missing or unexpected:
            raise ValueError(
                f"'{folder}': encoder weights do not fit its config "
                f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
            )
        logger.info(
            "loaded whisper encoder (%d params) from %s",
            sum(p.numel() for p in encoder.parameters()),
            folder,
        )
        return encoder


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / "model.safetensors").is_file():
        return load_file(str(folder / "model.safetensors"))
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        state: dict[str, torch.Tensor] = {}
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            state.update(load_file(str(folder / shard)))
        return state
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"no model.safetensors or pytorch_model.bin in '{folder}'")
