"""The trainable-state rule: which state-dict keys a checkpoint holds, saved and loaded.

Only what training changes is saved: trainable parameters, and the persistent buffers
of modules that are not frozen (BatchNorm statistics of a trained encoder). Frozen
pretrained parts (a 7B LLM) are rebuilt from the paths in the config, not copied into
every checkpoint. Training, resume, averaging and decoding all use this one rule.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


def trainable_keys(model: nn.Module) -> list[str]:
    """State-dict keys that training changes: trainable parameters, and the persistent
    buffers of modules that are not frozen.

    A buffer belongs to the nearest enclosing module that has parameters; when all of those
    are frozen (a pretrained LLM), the buffer comes with the pretrained weights instead.
    """
    keys = [name for name, p in model.named_parameters() if p.requires_grad]
    frozen: dict[str, bool] = {}  # module name -> has parameters, all frozen
    for name, module in model.named_modules():
        params = list(module.parameters())
        if params:
            frozen[name] = not any(p.requires_grad for p in params)
    for module_name, module in model.named_modules():
        for name, _ in module.named_buffers(recurse=False):
            if name in module._non_persistent_buffers_set:
                continue
            if _owner_is_frozen(module_name, frozen):
                continue
            keys.append(f"{module_name}.{name}" if module_name else name)
    return keys


def _owner_is_frozen(module_name: str, frozen: dict[str, bool]) -> bool:
    parts = module_name.split(".") if module_name else []
    for i in range(len(parts), -1, -1):
        prefix = ".".join(parts[:i])
        if prefix in frozen:
            return frozen[prefix]
    return False


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable part of ``model.state_dict()``, detached, on the CPU."""
    state = model.state_dict(keep_vars=True)
    return {k: state[k].detach().cpu().clone() for k in trainable_keys(model) if k in state}


def load_trainable_state_dict(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str
) -> None:
    """Load a trainable state dict; every trainable key must be there and nothing else."""
    expected = set(trainable_keys(model))
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise ValueError(
            f"checkpoint '{source}' does not match the model: missing {sorted(missing)[:5]}"
            f" ({len(missing)}), unexpected {sorted(unexpected)[:5]} ({len(unexpected)})"
        )
    current = model.state_dict()
    reshaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(current[k].shape)}"
        for k in sorted(expected)
        if k in current and tuple(state[k].shape) != tuple(current[k].shape)
    ]
    if reshaped:  # a checkpoint of another size: say so before torch's bare size error
        raise ValueError(
            f"checkpoint '{source}' does not match the model: {len(reshaped)} tensors have "
            f"another shape (checkpoint vs model): {reshaped[:3]}"
        )
    model.load_state_dict(dict(state), strict=False)
