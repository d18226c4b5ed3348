"""Reading and writing a Hugging Face style model folder: config.json + model.safetensors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def write_model_folder(
    folder: str | Path, config: dict[str, Any], state_dict: dict[str, torch.Tensor]
) -> Path:
    """Write both files under temporary names first, then rename, so no half folder is left."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp_weights = folder / f".{WEIGHTS_NAME}.tmp"
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(tmp_weights))
    tmp_config = folder / f".{CONFIG_NAME}.tmp"
    tmp_config.write_text(json.dumps(config, indent=2) + "\n")
    os.replace(tmp_weights, folder / WEIGHTS_NAME)
    os.replace(tmp_config, folder / CONFIG_NAME)
    return folder


def read_model_folder(folder: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    folder = Path(folder)
    config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not config_file.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in pretrained folder '{folder}'")
    if not weights_file.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in pretrained folder '{folder}'")
    return json.loads(config_file.read_text()), load_file(str(weights_file))
