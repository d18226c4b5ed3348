"""Optimizer and learning-rate schedule from ``trainer.optimizer`` / ``trainer.scheduler``.

``adamw`` (torch) or ``scaled_adam`` (the Zipformer's, ``auden.training.scaled_adam``);
schedules ``eden`` (icefall), ``cosine`` and ``constant``, each with a linear warm-up.
The trainer calls ``scheduler.step()`` once per optimizer step and ``set_epoch(e)``
at each epoch start (only eden uses it)::

    optimizer = build_optimizer(model.named_parameters(), cfg.trainer.optimizer)
    scheduler = build_scheduler(optimizer, cfg.trainer.scheduler, num_steps=cfg.trainer.num_steps)
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from auden.training.config import OptimizerConfig, SchedulerConfig
from auden.types import config_value


def parameter_groups(
    named_params: Iterable[tuple[str, torch.nn.Parameter]], cfg: OptimizerConfig
) -> list[dict]:
    """The trainable parameters in groups: one per ``part_lr`` prefix, the rest at ``lr``.

    ``part_lr`` maps a parameter-name prefix (``audio_encoder``, ``projector``, ``llm``,
    ``ctc_head``...) to its learning rate; the longest matching prefix wins. A prefix that
    matches no trainable parameter is an error, so a typo cannot silently do nothing.
    """
    part_lr = {str(k): float(v) for k, v in dict(cfg.part_lr or {}).items()}
    for prefix, lr in part_lr.items():
        if lr <= 0:
            raise ValueError(f"trainer.optimizer.part_lr.{prefix} must be > 0, got {lr}")
    groups: dict[str, list[torch.nn.Parameter]] = {}
    for name, p in named_params:
        if not p.requires_grad:
            continue
        owner = max(
            (k for k in part_lr if name == k or name.startswith(k + ".")), key=len, default=""
        )
        groups.setdefault(owner, []).append(p)
    unused = sorted(set(part_lr) - set(groups))
    if unused:
        raise ValueError(
            f"trainer.optimizer.part_lr names {unused}, which hold no trainable parameter"
        )
    return [
        {"params": params, "lr": part_lr.get(owner, cfg.lr), "name": owner or "default"}
        for owner, params in groups.items()
    ]


def build_optimizer(
    named_params: Iterable[tuple[str, torch.nn.Parameter]], cfg: OptimizerConfig
) -> Optimizer:
    params = parameter_groups(named_params, cfg)
    if not params:
        raise ValueError("the model has no trainable parameter: is everything frozen?")
    betas = tuple(cfg.betas)
    if len(betas) != 2:
        raise ValueError(f"trainer.optimizer.betas must hold two numbers, got {list(cfg.betas)}")
    name = config_value(cfg.name)
    if name == "adamw":
        return torch.optim.AdamW(
            params, lr=cfg.lr, betas=betas, eps=cfg.eps, weight_decay=cfg.weight_decay
        )
    if name == "scaled_adam":
        from auden.training.scaled_adam import ScaledAdam

        return ScaledAdam(
            params, lr=cfg.lr, betas=betas, eps=cfg.eps, clipping_scale=cfg.clipping_scale or None
        )
    raise ValueError(f"trainer.optimizer.name '{name}' unknown; use adamw or scaled_adam")


def _warmup(step: int, cfg: SchedulerConfig) -> float:
    if cfg.warmup_batches <= 0 or step >= cfg.warmup_batches:
        return 1.0
    return cfg.warmup_start + (1.0 - cfg.warmup_start) * step / cfg.warmup_batches


class WarmupSchedule(LRScheduler):
    """Linear warm-up, then constant or cosine decay to ``min_lr_ratio`` at ``num_steps``.

    With ``decay_fraction`` < 1 the cosine only spans the last part of the run and the
    rate stays at its peak before it (warm-up, stable, decay): a short run keeps learning
    fast for most of its steps and still ends at a low rate, where checkpoints settle.
    """

    def __init__(self, optimizer: Optimizer, cfg: SchedulerConfig, num_steps: int = 0) -> None:
        self.cfg = cfg
        self.cosine = config_value(cfg.name) == "cosine"
        if self.cosine and num_steps <= 0:
            raise ValueError("trainer.scheduler.name=cosine needs trainer.num_steps > 0")
        if not 0.0 < cfg.decay_fraction <= 1.0:
            raise ValueError(
                f"trainer.scheduler.decay_fraction={cfg.decay_fraction}: must be in (0, 1]"
            )
        self.num_steps = num_steps
        super().__init__(optimizer)

    def set_epoch(self, epoch: int) -> None:
        pass

    def factor(self, step: int) -> float:
        f = _warmup(step, self.cfg)
        decay_start = max(
            self.cfg.warmup_batches,
            round(self.num_steps - self.cfg.decay_fraction * self.num_steps),
        )
        if self.cosine and step > decay_start:
            span = max(1, self.num_steps - decay_start)
            progress = min(1.0, (step - decay_start) / span)
            floor = self.cfg.min_lr_ratio
            f *= floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        return f

    def get_lr(self) -> list[float]:
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]

    def state_dict(self) -> dict:
        return {k: v for k, v in super().state_dict().items() if k != "cfg"}


class EdenSchedule:
    """Adapter giving auden's Eden the trainer's ``step()`` / ``set_epoch()`` calls."""

    def __init__(self, optimizer: Optimizer, cfg: SchedulerConfig) -> None:
        from auden.training.scaled_adam import Eden

        self.eden = Eden(
            optimizer,
            lr_batches=cfg.lr_batches,
            lr_epochs=cfg.lr_epochs,
            warmup_batches=cfg.warmup_batches,
            warmup_start=cfg.warmup_start,
        )

    def step(self) -> None:
        self.eden.step_batch()

    def set_epoch(self, epoch: int) -> None:
        # icefall counts finished epochs: epoch 1 trains with the epoch factor of 0.
        self.eden.step_epoch(epoch - 1)

    def get_last_lr(self) -> list[float]:
        return self.eden.get_last_lr()

    def state_dict(self) -> dict:
        return self.eden.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.eden.load_state_dict(state)


def build_scheduler(optimizer: Optimizer, cfg: SchedulerConfig, num_steps: int = 0):
    if config_value(cfg.name) == "eden":
        return EdenSchedule(optimizer, cfg)
    return WarmupSchedule(optimizer, cfg, num_steps)
