"""AutoConfig: ``model_type`` -> config dataclass, resolved lazily.

A model's config is a dataclass with a ``model_type`` field; it is what Hydra validates
(``model=audio_llm``), what a checkpoint stores under ``"config"["model"]`` and what an
exported folder's ``config.json`` holds. This module turns any of those back into the
dataclass without importing every model::

    cfg = AutoConfig.for_model("audio_llm", audio_token="<|AUDIO|>")
    cfg = AutoConfig.from_dict({"model_type": "zipformer_ctc", ...})
    cfg = AutoConfig.from_pretrained("exp/export")
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# model_type -> "module:ConfigClass"
CONFIG_CLASSES: dict[str, str] = {
    "audio_llm": "auden.models.audio_llm:AudioLlmConfig",
    "zipformer_ctc": "auden.models.ctc:CtcModelConfig",
    "text_llm": "auden.models.text_llm:TextLlmConfig",
}


def import_target(target: str) -> Any:
    """Import ``"package.module:Name"`` and return ``Name``."""
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


def config_class(model_type: str) -> type:
    try:
        target = CONFIG_CLASSES[model_type]
    except KeyError:
        raise ValueError(
            f"unknown model_type '{model_type}'; known: {sorted(CONFIG_CLASSES)}"
        ) from None
    return import_target(target)


def config_to_dict(config: Any) -> dict:
    """A plain dict (JSON-able) of a config dataclass, DictConfig or mapping."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(config, DictConfig):
            return OmegaConf.to_container(config, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(f"cannot read a model config from a {type(config).__name__}")


class AutoConfig:
    """Build a model's config dataclass from its ``model_type``."""

    @staticmethod
    def for_model(model_type: str, **kwargs: Any) -> Any:
        """The config dataclass of ``model_type`` with ``kwargs`` overriding defaults."""
        return AutoConfig.from_dict({"model_type": model_type, **kwargs})

    @staticmethod
    def from_dict(config: Any) -> Any:
        """Validate a mapping (dict, DictConfig) against its dataclass; unknown keys fail.

        A dataclass instance is returned unchanged.
        """
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            return config
        data = config_to_dict(config)
        model_type = data.get("model_type")
        if not model_type:
            raise ValueError(f"model config has no 'model_type' key (keys: {sorted(data)})")
        cls = config_class(model_type)
        from omegaconf import OmegaConf
        from omegaconf.errors import ConfigKeyError, ValidationError

        try:
            merged = OmegaConf.merge(OmegaConf.structured(cls), data)
        except (ConfigKeyError, ValidationError) as e:
            raise ValueError(f"invalid '{model_type}' model config: {e}") from e
        return OmegaConf.to_object(merged)

    @staticmethod
    def from_pretrained(folder: str | Path) -> Any:
        """The config dataclass stored in ``folder/config.json``."""
        config_file = Path(folder) / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"no config.json in model folder '{folder}'")
        return AutoConfig.from_dict(json.loads(config_file.read_text()))
