"""AutoModel: ``model_type`` -> model class, resolved lazily.

Importing auden does not import every model: the registry maps a ``model_type`` to
``"module:Class"`` and imports the module when asked. Every model class provides
``from_config(config_dataclass)`` (loading any pretrained sub-parts named in it) and
``from_pretrained(folder)``::

    model = AutoModel.from_pretrained("exp/export").eval()
    model = AutoModel.from_config(checkpoint["config"]["model"])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from auden.auto.auto_config import CONFIG_CLASSES, AutoConfig, config_to_dict, import_target

# model_type -> "module:Class"
MODEL_CLASSES: dict[str, str] = {
    "audio_llm": "auden.models.audio_llm:AudioLlm",
    "zipformer_ctc": "auden.models.ctc:CtcModel",
    "text_llm": "auden.models.text_llm:TextLlm",
}


def register_model(model_type: str, model_target: str, config_target: str) -> None:
    """Add a model type: ``register_model("my_lm", "pkg.mod:MyLm", "pkg.mod:MyLmConfig")``."""
    MODEL_CLASSES[model_type] = model_target
    CONFIG_CLASSES[model_type] = config_target


def model_class(model_type: str) -> type:
    try:
        target = MODEL_CLASSES[model_type]
    except KeyError:
        raise ValueError(
            f"unknown model_type '{model_type}'; known: {sorted(MODEL_CLASSES)}"
        ) from None
    return import_target(target)


class AutoModel:
    """Build or load any auden model by its ``model_type``."""

    @staticmethod
    def from_config(config: Any) -> Any:
        """Build a model from its config (dataclass, DictConfig or dict with ``model_type``)."""
        config = AutoConfig.from_dict(config)
        return model_class(config.model_type).from_config(config)

    @staticmethod
    def from_pretrained(folder: str | Path, **kwargs: Any) -> Any:
        """Load a model saved with ``save_pretrained(folder)``."""
        config_file = Path(folder) / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"no config.json in model folder '{folder}'")
        model_type = json.loads(config_file.read_text()).get("model_type")
        if not model_type:
            raise ValueError(f"'{config_file}' has no 'model_type'")
        return model_class(model_type).from_pretrained(folder, **kwargs)


__all__ = ["AutoModel", "AutoConfig", "MODEL_CLASSES", "register_model", "config_to_dict"]
