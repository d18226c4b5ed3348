"""Decoding and scoring: ``evaluate(cfg)`` resolves a checkpoint, decodes the test sets, scores.

Imports are lazy, so that ``auden.decoding.metrics`` does not pull in the models.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "evaluate": "auden.decoding.decode",
    "EvalConfig": "auden.decoding.config",
    "register_configs": "auden.decoding.config",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'auden.decoding' has no attribute '{name}'")


__all__ = list(_LAZY)
