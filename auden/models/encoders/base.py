"""The audio-encoder interface and its lazy `model_type -> class` registry.

Every encoder maps fbank-like features ``[B, T, F]`` with lengths ``[B]`` to an
:class:`~auden.types.EncoderOutput` and knows its own output frame rate, so the
projector and the audio-token expansion can compute lengths exactly.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import torch
from torch import nn

from auden.audio.features import FeatureSpec
from auden.types import EncoderOutput

# model_type -> "module:Class"; imported only when asked for, so `import auden` stays light.
ENCODER_CLASSES: dict[str, str] = {
    "zipformer": "auden.models.encoders.zipformer:ZipformerEncoder",
    "whisper": "auden.models.encoders.whisper:WhisperEncoder",
}


class AudioEncoder(nn.Module):
    """Base class of every encoder. Subclasses set ``model_type`` and implement the rest."""

    model_type: str = ""
    # The linear layers LoRA adapts when the audio LLM trains the encoder with ``lora``.
    lora_targets: tuple[str, ...] = ()

    @property
    def output_dim(self) -> int:
        raise NotImplementedError

    def layers(self) -> list[nn.Module]:
        """The encoder's layers from input to output; ``top_layers: N`` trains the last N."""
        raise NotImplementedError

    @property
    def frame_rate(self) -> float:
        """Output frames per second."""
        raise NotImplementedError

    @property
    def features(self) -> FeatureSpec:
        """The features this encoder reads; the data side follows it or refuses a mismatch."""
        raise NotImplementedError

    def output_lengths(self, feature_lens: torch.Tensor) -> torch.Tensor:
        """Exact number of output frames for each input length."""
        raise NotImplementedError

    def forward(self, features: torch.Tensor, feature_lens: torch.Tensor) -> EncoderOutput:
        raise NotImplementedError


def encoder_class(model_type: str) -> type[AudioEncoder]:
    try:
        target = ENCODER_CLASSES[model_type]
    except KeyError:
        raise ValueError(
            f"unknown audio encoder model_type '{model_type}'; known: {sorted(ENCODER_CLASSES)}"
        ) from None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def read_model_type(folder: str | Path) -> str:
    """The ``model_type`` recorded in a pretrained folder's ``config.json``."""
    config_file = Path(folder) / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"no config.json in pretrained folder '{folder}'")
    return json.loads(config_file.read_text())["model_type"]
