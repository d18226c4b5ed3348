"""LoRA adapters through peft: the config auden exposes, wrapping a module, merging for export."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from torch import nn


@dataclass
class LoraConfig:
    """``enabled`` wraps the module with peft LoRA; its base weights are then frozen."""

    enabled: bool = False
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
    )


def add_lora(module: nn.Module, config: LoraConfig, where: str) -> nn.Module:
    """Wrap ``module`` with LoRA adapters on ``config.target_modules``."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    if not config.target_modules:
        raise ValueError(f"{where}.lora.target_modules is empty")
    names = {name.rsplit(".", 1)[-1] for name, _ in module.named_modules()}
    absent = [t for t in config.target_modules if t not in names]
    if absent:
        raise ValueError(
            f"{where}.lora.target_modules {absent} match no layer of the model "
            f"(some layer names: {sorted(names)[:12]})"
        )
    peft_config = PeftLoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
    )
    return get_peft_model(module, peft_config)


def is_lora(module: nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(module, PeftModel)


def base_module(module: nn.Module) -> nn.Module:
    """The wrapped model of a peft module, or the module itself."""
    return module.get_base_model() if is_lora(module) else module


def merged_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with LoRA merged into the base weights (the module is untouched)."""
    if not is_lora(module):
        return module
    return copy.deepcopy(module).merge_and_unload()
