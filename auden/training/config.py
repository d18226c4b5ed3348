"""The training config: Hydra structured configs, so a misspelt key is rejected by name.

``model`` is a config group, one entry per model type known to the Auto registry
(``model=audio_llm``, the default, or ``model=zipformer_ctc``); its dataclass lives with
the model. The primary config ``auden_train`` also puts Hydra's run dir under
``exp_dir``. A recipe's ``train.py``::

    @hydra.main(version_base="1.3", config_path="configs", config_name="train")
    def main(cfg): auden.training.train(cfg)

with ``configs/train.yaml`` starting ``defaults: [auden_train, _self_]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from auden.data.config import DataConfig
from auden.types import config_value

logger = logging.getLogger(__name__)


class OptimizerName(str, Enum):
    adamw = "adamw"
    scaled_adam = "scaled_adam"


class SchedulerName(str, Enum):
    eden = "eden"  # icefall's: decays with batches and epochs, after a linear warm-up
    cosine = "cosine"  # warm-up, then cosine decay to min_lr_ratio over trainer.num_steps
    constant = "constant"  # warm-up, then constant


class Strategy(str, Enum):
    ddp = "ddp"  # every rank holds the whole model (DistributedDataParallel)
    fsdp = "fsdp"  # every rank holds a shard of it (FSDP2, fully_shard); sharded checkpoints


class Precision(str, Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


@dataclass
class OptimizerConfig:
    name: OptimizerName = OptimizerName.adamw
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-8
    weight_decay: float = 0.01  # adamw only
    clipping_scale: float = 2.0  # scaled_adam only: clip at this times the median grad norm
    # Per-part learning rates: parameter-name prefix -> lr, e.g. {audio_encoder: 2e-4};
    # parts not named train at ``lr``.
    part_lr: dict[str, float] = field(default_factory=dict)


@dataclass
class SchedulerConfig:
    name: SchedulerName = SchedulerName.eden
    warmup_batches: int = 500
    warmup_start: float = 0.5  # lr factor at step 0 of the warm-up
    lr_batches: float = 7500.0  # eden
    lr_epochs: float = 3.5  # eden
    min_lr_ratio: float = 0.0  # cosine
    decay_fraction: float = 1.0  # cosine: decay over this last part of num_steps (peak before)


@dataclass
class TrainerConfig:
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    num_epochs: int = 10
    num_steps: int = 0  # stop after this many optimizer steps; 0: run num_epochs
    start_epoch: int = 1  # > 1: resume from epoch-(start_epoch-1).pt
    start_batch: int = 0  # > 0: resume from checkpoint-<start_batch>.pt (wins over start_epoch)
    save_every_n: int = 4000
    keep_last_k: int = 30  # iteration checkpoints kept; 0 keeps all
    average_period: int = 200
    log_interval: int = 50
    valid_interval: int = 3000
    grad_accum: int = 1
    grad_clip: float = 5.0  # max grad norm; 0 disables (scaled_adam clips by itself)
    dtype: Precision = Precision.float32  # autocast dtype where the device supports it
    # How ranks share the model under torchrun; fsdp also computes in ``dtype`` (FSDP2's
    # mixed precision) and writes checkpoints as folders (torch.distributed.checkpoint).
    strategy: Strategy = Strategy.ddp
    tensorboard: bool = True
    seed: int = 42
    max_nonfinite: int = 20  # this many non-finite steps in a row stop training
    # Seconds a collective waits for the other ranks; then training stops with an error
    # naming the rank that died or hangs (instead of nccl's 10 or gloo's 30 minutes).
    dist_timeout: float = 300.0


@dataclass
class TrainConfig:
    defaults: list[Any] = field(default_factory=lambda: [{"model": "audio_llm"}, "_self_"])
    exp_dir: str = "exp"
    model: Any = MISSING
    data: DataConfig = field(default_factory=DataConfig)
    prompt_file: str = ""  # prompts for sources whose data config entry names none
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def _register_model_configs(cs: ConfigStore) -> None:
    from auden.auto.auto_config import CONFIG_CLASSES, import_target

    for model_type, target in CONFIG_CLASSES.items():
        try:
            node = import_target(target)
        except (ImportError, AttributeError) as e:
            logger.warning("model config '%s' (%s) unavailable: %s", model_type, target, e)
            continue
        cs.store(group="model", name=model_type, node=node)


def register_shared_configs(cs: ConfigStore, folder: Path) -> None:
    """Every yaml under ``folder`` into the ConfigStore: ``<group>/<name>.yaml`` as option
    ``name`` of ``group`` (``model/whisper_qwen2.yaml``), a top-level yaml as a config of
    its own; so recipes list shared presets in their defaults instead of copying them."""
    if not folder.is_dir():
        raise FileNotFoundError(f"shared config folder '{folder}' not found")
    for path in sorted(folder.rglob("*.yaml")):
        rel = path.relative_to(folder)
        group = "/".join(rel.parts[:-1]) or None
        cs.store(group=group, name=path.stem, node=OmegaConf.load(path))


def register_configs(shared: str | Path | None = None) -> None:
    """Put ``auden_train``, the ``model`` group and the yaml files under ``shared`` (a
    folder of presets several recipes use) into Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    _register_model_configs(cs)
    if shared is not None:
        register_shared_configs(cs, Path(shared))
    cs.store(name="auden_train_schema", node=TrainConfig)
    cs.store(
        name="auden_train",
        node={
            "defaults": ["auden_train_schema", "_self_"],
            "hydra": {
                "run": {"dir": "${exp_dir}/hydra/${now:%Y-%m-%d_%H-%M-%S}"},
                "job": {"chdir": False},
            },
        },
    )


def to_plain_dict(cfg: DictConfig | TrainConfig) -> dict:
    """The resolved config as plain containers (enums as strings): what checkpoints hold."""
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.structured(cfg)
    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    plain.pop("defaults", None)  # Hydra's composition list, not a setting
    return plain


_POSITIVE = (
    "num_epochs", "save_every_n", "average_period", "log_interval", "valid_interval",
    "grad_accum", "max_nonfinite",
)


def check_config(cfg: TrainConfig) -> TrainConfig:
    """Values Hydra's types cannot check; each error names its key."""
    t = cfg.trainer
    for key in _POSITIVE:
        if getattr(t, key) < 1:
            raise ValueError(f"trainer.{key} must be >= 1, got {getattr(t, key)}")
    for key in ("num_steps", "start_batch", "keep_last_k"):
        if getattr(t, key) < 0:
            raise ValueError(f"trainer.{key} must be >= 0, got {getattr(t, key)}")
    if t.dist_timeout <= 0:
        raise ValueError(f"trainer.dist_timeout must be > 0 seconds, got {t.dist_timeout}")
    if t.start_epoch < 1:
        raise ValueError(f"trainer.start_epoch must be >= 1, got {t.start_epoch}")
    optimizer = config_value(t.optimizer.name)
    if config_value(t.strategy) == "fsdp" and optimizer != "adamw":
        raise ValueError(
            f"trainer.strategy=fsdp trains with trainer.optimizer.name=adamw, not {optimizer} "
            "(ScaledAdam is not written for sharded parameters)"
        )
    if t.optimizer.lr <= 0:
        raise ValueError(f"trainer.optimizer.lr must be > 0, got {t.optimizer.lr}")
    if cfg.data.sampler.max_duration <= 0:
        raise ValueError(
            f"data.sampler.max_duration must be > 0, got {cfg.data.sampler.max_duration}"
        )
    if cfg.prompt_file and not Path(cfg.prompt_file).is_file():
        raise FileNotFoundError(f"prompt_file '{cfg.prompt_file}' not found")
    return cfg


def as_train_config(cfg: DictConfig | TrainConfig) -> TrainConfig:
    """The typed config; a plain DictConfig is first validated against the schema."""
    if isinstance(cfg, TrainConfig):
        return check_config(cfg)
    if OmegaConf.get_type(cfg) is not TrainConfig:
        schema = OmegaConf.structured(TrainConfig)
        model = cfg.get("model")
        cfg = OmegaConf.merge(schema, {k: v for k, v in cfg.items() if k != "model"})
        cfg.model = model
    return check_config(OmegaConf.to_object(cfg))
