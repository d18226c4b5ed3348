"""Training: ``train(cfg)`` runs a Hydra TrainConfig under torchrun (DDP), with checkpoints.

Imports are lazy, so that ``import auden.training`` does not pull in the models and data.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "train": "auden.training.loop",
    "Trainer": "auden.training.trainer",
    "TrainConfig": "auden.training.config",
    "register_configs": "auden.training.config",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'auden.training' has no attribute '{name}'")


__all__ = list(_LAZY)
