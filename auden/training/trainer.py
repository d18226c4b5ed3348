"""The trainer: builds model, data, optimizer from a TrainConfig; saves and resumes exactly.

The step loop and the ``train`` entry point live in :mod:`auden.training.loop`, which
imports this module (never the other way round); what is saved in a checkpoint, and
how it is restored, lives here.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import yaml
from torch.nn.parallel import DistributedDataParallel

from auden.atomic import atomic_file, atomic_folder
from auden.checkpoint import (
    RunningAverage,
    epoch_checkpoint_path,
    find_checkpoints,
    iter_checkpoint_path,
    load_checkpoint,
    load_sharded_into,
    load_sharded_meta,
    load_trainable_state_dict,
    remove_old_checkpoints,
    remove_temp_files,
    save_checkpoint,
    save_sharded_checkpoint,
    stored_checkpoint,
    trainable_keys,
    trainable_state_dict,
)
from auden.data.config import follow_model
from auden.data.loader import ModelHints, build_train_data, build_valid_loader
from auden.training.config import TrainConfig, to_plain_dict
from auden.training.distributed import DistInfo, allreduce_each_gradient, gather_objects
from auden.training.metrics import TensorBoard
from auden.training.optim import build_optimizer, build_scheduler
from auden.training.rng import capture_rng_state, restore_rng_state, seed_everything
from auden.types import DTYPES, AudioBatch, SpeechModel, config_value

logger = logging.getLogger(__name__)

@dataclass
class TrainState:
    """Counters saved in every checkpoint."""

    epoch: int = 1
    batch_idx_train: int = 0  # optimizer steps done
    batches_in_epoch: int = 0  # micro-batches of `epoch` consumed (for mid-epoch resume)
    nonfinite_steps: int = 0
    consecutive_nonfinite: int = 0
    skipped_cuts: int = 0


def autocast_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``trainer.dtype`` on this device; None means plain float32."""
    dtype = DTYPES[name]
    if dtype == torch.float32:
        return None
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        logger.warning("this GPU has no bfloat16: training in float32")
        return None
    if device.type == "cpu" and dtype == torch.float16:
        logger.warning("float16 autocast needs a GPU: training in float32")
        return None
    return dtype


def model_hints(model: SpeechModel) -> ModelHints:
    """What the model tells the "clip too short for its target" filter."""
    tokenizer = model.tokenizer

    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return ModelHints(
        fits=model.target_fits, count_tokens=count_tokens, reads_audio=model.features is not None
    )


def _fingerprint(state: dict[str, torch.Tensor]) -> tuple[float, float]:
    """Two sums that differ between ranks as soon as their weights do."""
    total, squares = 0.0, 0.0
    for v in state.values():
        v = v.detach().double()
        total += float(v.sum())
        squares += float((v * v).sum())
    return total, squares


def _build_model(model_cfg) -> SpeechModel:
    from auden.auto.auto_model import AutoModel

    model = AutoModel.from_config(model_cfg)
    if not isinstance(model, SpeechModel):
        raise TypeError(
            f"the model config builds a {type(model).__name__}, which lacks what training "
            "needs (auden.types.SpeechModel: forward, decode, tokenizer, features, ...)"
        )
    return model


class Trainer:
    def __init__(self, cfg: TrainConfig, dist: DistInfo) -> None:
        self.cfg = cfg
        self.dist = dist
        t = cfg.trainer
        self.exp_dir = Path(cfg.exp_dir)
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        if dist.is_main:
            remove_temp_files(self.exp_dir)

        seed_everything(t.seed)  # the same initial weights on every rank
        self.model = _build_model(cfg.model).to(dist.device)
        self.sharded = config_value(t.strategy) == "fsdp" and dist.enabled
        if config_value(t.strategy) == "fsdp" and not dist.enabled:
            logger.warning("trainer.strategy=fsdp in one process: nothing to shard, training "
                           "as without torchrun (checkpoints as .pt files)")
        # The model says which features it reads; the data follows it (or refuses).
        cfg.data = follow_model(cfg.data, self.model.features)
        if dist.is_main:
            self._save_config()
        if dist.is_main:
            # Beside the checkpoints, so that decoding needs nothing from the training set-up.
            with atomic_folder(self.exp_dir / "tokenizer") as tmp:
                self.model.tokenizer.save_pretrained(str(tmp))
        self.dtype = autocast_dtype(config_value(t.dtype), dist.device)
        # Parameters whole on every rank under FSDP, whose gradients are averaged by hand.
        self.unsharded_params: list[torch.nn.Parameter] = []
        if self.sharded:  # before the optimizer, which must hold the sharded parameters
            from auden.training.fsdp import shard_model

            whole = shard_model(self.model, self.dtype)
            self.unsharded_params = [p for p in whole if p.requires_grad]
        self.optimizer = build_optimizer(self.model.named_parameters(), t.optimizer)
        self.scheduler = build_scheduler(self.optimizer, t.scheduler, num_steps=t.num_steps)
        self.scaler = torch.amp.GradScaler(
            dist.device.type, enabled=self.dtype == torch.float16
        )
        self.state = TrainState(epoch=t.start_epoch)
        self.last_cut_ids: list[str] = []
        self.last_batch: AudioBatch | None = None  # for FSDP's forward of an empty batch
        # Under FSDP every rank averages its own shards; under DDP rank 0 the whole model.
        self.model_avg = (
            RunningAverage.of_model(self.model) if dist.is_main or self.sharded else None
        )
        ckpt = self._resume_checkpoint()
        if ckpt is not None:
            self._restore(ckpt)

        hints = model_hints(self.model)
        common = dict(
            seed=t.seed,
            rank=dist.rank,
            world_size=dist.world_size,
            prompt_file=cfg.prompt_file or None,
            hints=hints,
        )
        self.train_data = build_train_data(cfg.data, **common)
        if ckpt is not None and self.state.batches_in_epoch:
            readers = ckpt["sampler"].get("readers") or []
            self.train_data.load_state_dict(readers[dist.rank] if dist.rank < len(readers) else None)
        self.valid_loader = build_valid_loader(cfg.data, **common)
        self.ddp_model = self.model  # under FSDP the model itself: fully_shard wraps in place
        if dist.enabled and not self.sharded:
            self.ddp_model = DistributedDataParallel(
                self.model, device_ids=[dist.local_rank] if dist.device.type == "cuda" else None
            )
            if dist.device.type == "cpu" and dist.world_size > 2:
                # Gradients summed alike whatever DDP's buckets: a resumed run stays exact.
                # Two ranks need no hook (a + b == b + a in any bucket layout), and it costs
                # them ~20% of a Zipformer step (one gloo call per tensor). Not on GPUs:
                # NCCL's bucketed all-reduce is what makes DDP fast there (one call per
                # 25 MB), and CUDA kernels are not bitwise deterministic anyway, so a
                # resumed GPU run equals its original up to rounding.
                self.ddp_model.register_comm_hook(None, allreduce_each_gradient)
        self.tensorboard = TensorBoard(self.exp_dir, t.tensorboard and dist.is_main)

        # Last: nothing above may shift the random streams the training steps draw from.
        if ckpt is not None:
            rng = ckpt["rng"]
            restore_rng_state(rng[dist.rank % len(rng)])
        else:
            seed_everything(t.seed + dist.rank)

    # ---- set-up ----

    def _save_config(self) -> None:
        with atomic_file(self.exp_dir / "train_config.yaml") as tmp:
            tmp.write_text(yaml.safe_dump(to_plain_dict(self.cfg), sort_keys=False))

    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.dist.device.type, dtype=self.dtype)

    @property
    def trainable_params(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def gradient_sync(self, sync: bool):
        """DDP's ``no_sync`` between the micro-batches of an accumulation.

        FSDP reduce-scatters every micro-batch's gradients instead: it keeps them sharded
        between micro-batches, which is what it is for.
        """
        if self.dist.enabled and not self.sharded and not sync:
            return self.ddp_model.no_sync()
        return nullcontext()

    # ---- checkpoints ----

    def _resume_checkpoint(self) -> dict | None:
        t = self.cfg.trainer
        if t.start_batch > 0:
            path = iter_checkpoint_path(self.exp_dir, t.start_batch)
        elif t.start_epoch > 1:
            path = epoch_checkpoint_path(self.exp_dir, t.start_epoch - 1)
        else:
            if self.dist.is_main and find_checkpoints(self.exp_dir):
                logger.warning("%s holds checkpoints of an earlier run: this run overwrites "
                               "them (resume with trainer.start_batch=N)", self.exp_dir)
            return None
        path = stored_checkpoint(path)
        if path.is_dir() != self.sharded:
            raise ValueError(
                f"'{path}' was written under trainer.strategy="
                f"{'fsdp' if path.is_dir() else 'ddp'}: resume it with the same strategy "
                "(both read by evaluate.py and `auden export`)"
            )
        logger.info("resuming from %s", path)
        if not self.sharded:
            return load_checkpoint(path)
        ckpt = load_sharded_meta(path)
        tensors = self._sharded_tensors()
        load_sharded_into(tensors, path)  # in place: into this rank's shards
        return {**ckpt, **tensors}

    def _sharded_tensors(self) -> dict:
        """What a sharded checkpoint holds of this rank: its shards (DTensors), live."""
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        state = self.model.state_dict()
        return {
            "model": {k: state[k] for k in trainable_keys(self.model) if k in state},
            "model_avg": self.model_avg.state_dict(),
            "optimizer": get_optimizer_state_dict(self.model, self.optimizer),
        }

    def _restore(self, ckpt: dict) -> None:
        source = f"{self.cfg.exp_dir}: batch {ckpt.get('batch_idx_train')}"
        load_trainable_state_dict(self.model, ckpt["model"], source)
        if self.model_avg is not None and ckpt.get("model_avg") is not None:
            self.model_avg = RunningAverage(ckpt["model_avg"])
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

            set_optimizer_state_dict(self.model, self.optimizer, ckpt["optimizer"])
        else:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("grad_scaler"):
            self.scaler.load_state_dict(ckpt["grad_scaler"])
        self.state = TrainState(**ckpt["counters"])
        if self.cfg.trainer.start_batch <= 0:  # from epoch-(E-1).pt: start epoch E afresh
            self.state.epoch = self.cfg.trainer.start_epoch
            self.state.batches_in_epoch = 0
        saved_world = ckpt["sampler"]["world_size"]
        if saved_world != self.dist.world_size:
            logger.warning(
                "checkpoint was written with %d ranks, resuming with %d: data order differs",
                saved_world,
                self.dist.world_size,
            )

    def _payload(self) -> dict:
        """Everything exact resume needs. A collective: every rank calls it.

        Under FSDP the weights, their average and the optimizer state are left out: each
        rank writes its shards of them itself (:meth:`save`).
        """
        per_rank = gather_objects(
            {
                "rng": capture_rng_state(),
                "last_cut_ids": list(self.last_cut_ids),
                # Parameters only: buffers (BatchNorm statistics) are each rank's own under
                # DDP, which broadcasts rank 0's before every forward; rank 0's are saved.
                # Under FSDP each rank holds other shards: there is nothing to compare.
                "fingerprint": None if self.sharded else _fingerprint(
                    {n: p for n, p in self.model.named_parameters() if p.requires_grad}
                ),
                "readers": self.train_data.state_dict(),
            }
        )
        fingerprints = [r["fingerprint"] for r in per_rank]
        if any(f != fingerprints[0] for f in fingerprints):
            raise RuntimeError(
                f"ranks hold different weights at step {self.state.batch_idx_train} "
                f"(fingerprints {fingerprints}): gradients were not synchronised"
            )
        t = self.cfg.trainer
        tensors = {} if self.sharded else {
            "model": trainable_state_dict(self.model),
            "model_avg": self.model_avg.state_dict() if self.model_avg is not None else None,
            "optimizer": self.optimizer.state_dict(),
        }
        return {
            **tensors,
            "scheduler": self.scheduler.state_dict(),
            "grad_scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "sampler": {
                "epoch": self.state.epoch,
                "batches_in_epoch": self.state.batches_in_epoch,
                "seed": t.seed,
                "world_size": self.dist.world_size,
                "readers": [r["readers"] for r in per_rank],  # sharded reading: per rank
            },
            "rng": [r["rng"] for r in per_rank],
            # What each rank trained on last: tells where a run was, and that ranks differ.
            "last_cut_ids": [r["last_cut_ids"] for r in per_rank],
            "counters": asdict(self.state),
            "batch_idx_train": self.state.batch_idx_train,
            "epoch": self.state.epoch,
            "average_period": t.average_period,
            "config": to_plain_dict(self.cfg),
        }

    def save(self, path: Path) -> None:
        payload = self._payload()
        if self.sharded:
            save_sharded_checkpoint(self._sharded_tensors(), payload, path)
            if self.dist.is_main:
                logger.info("saved %s", path)
        elif self.dist.is_main:
            save_checkpoint(payload, path)
            logger.info("saved %s", path)

    def save_iter_checkpoint(self) -> None:
        self.save(iter_checkpoint_path(self.exp_dir, self.state.batch_idx_train, self.sharded))
        if self.dist.is_main:
            remove_old_checkpoints(self.exp_dir, self.cfg.trainer.keep_last_k)

    def save_epoch_checkpoint(self) -> None:
        self.save(epoch_checkpoint_path(self.exp_dir, self.state.epoch, self.sharded))
