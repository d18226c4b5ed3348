"""A module's weights to and from ``model.safetensors``, tied weights stored once."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from auden.atomic import atomic_file


def save_weights(state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Write ``state`` to a safetensors file, keeping one name per aliased tensor.

    safetensors refuses tensors that share memory (tied input/output embeddings); the
    first name is kept and :func:`load_weights` restores the tie from the module itself.
    """
    seen: set[tuple] = set()
    unique = {}
    for name, tensor in state.items():
        key = (
            tensor.untyped_storage().data_ptr(),
            tensor.storage_offset(),
            tuple(tensor.shape),
            tuple(tensor.stride()),
        )
        if key in seen:
            continue
        seen.add(key)
        unique[name] = tensor.detach().cpu().contiguous()
    with atomic_file(path) as tmp:
        save_file(unique, str(tmp), metadata={"format": "pt"})


def load_weights(module: nn.Module, path: str | Path) -> None:
    """Load a file written by :func:`save_weights`; anything missing must be a tied alias."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file '{path}'")
    missing, unexpected = module.load_state_dict(load_file(str(path)), strict=False)
    params = dict(module.named_parameters(remove_duplicate=False))
    loaded = {id(p) for name, p in params.items() if name not in missing}
    untied = [k for k in missing if k not in params or id(params[k]) not in loaded]
    if untied or unexpected:
        raise ValueError(
            f"'{path}' does not fit the model: missing {untied[:5]}, unexpected {unexpected[:5]}"
        )
