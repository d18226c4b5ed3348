"""Make ``transformers.AutoConfig``/``AutoModel.from_pretrained(folder)`` load auden models.

transformers resolves a folder's ``model_type`` through its own registry; this adds
auden's types to it. The model class handed to transformers is a thin loader that
imports the real model only when a folder is actually loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

from transformers import AutoConfig as HfAutoConfig
from transformers import AutoModel as HfAutoModel
from transformers import PretrainedConfig


class AudioLlmHfConfig(PretrainedConfig):
    """transformers' view of an exported ``audio_llm`` folder's config.json."""

    model_type = "audio_llm"


class _AudioLlmLoader:
    """Stands in for ``AudioLlm`` in transformers' registry; loads it lazily."""

    config_class = AudioLlmHfConfig

    @classmethod
    def from_pretrained(cls, folder: Any, *args: Any, **kwargs: Any) -> Any:
        model_class = importlib.import_module("auden.models.audio_llm").AudioLlm
        return model_class.from_pretrained(folder)


def register_with_transformers() -> None:
    """Idempotent: register auden's model types with transformers' Auto classes."""
    HfAutoConfig.register("audio_llm", AudioLlmHfConfig, exist_ok=True)
    HfAutoModel.register(AudioLlmHfConfig, _AudioLlmLoader, exist_ok=True)
