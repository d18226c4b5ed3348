"""A Hugging Face style model folder: config.json + model.safetensors (+ a tokenizer).

Written through :func:`auden.atomic.atomic_folder`, so a reader finds the old folder or
the complete new one, never config.json of one save beside the weights of another::

    write_model_folder("exp/ctc/export", config, model.state_dict(), extra=tokenizer.save_pretrained)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from auden.atomic import atomic_folder
from auden.models.weights_io import save_weights

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def write_model_folder(
    folder: str | Path,
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    extra: Callable[[str], Any] | None = None,
) -> Path:
    """Write config.json, model.safetensors and whatever ``extra(folder)`` adds, atomically."""
    folder = Path(folder)
    with atomic_folder(folder) as tmp:
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        save_weights(state_dict, tmp / WEIGHTS_NAME)
        if extra is not None:
            extra(str(tmp))
    return folder


def read_model_folder(folder: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    folder = Path(folder)
    config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not config_file.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in pretrained folder '{folder}'")
    if not weights_file.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in pretrained folder '{folder}'")
    return json.loads(config_file.read_text()), load_file(str(weights_file))
