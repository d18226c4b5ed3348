"""The training loop and its entry point ``train(cfg)``, which every recipe's train.py calls.

Under torchrun every rank runs it (DDP, gloo on CPUs, nccl on GPUs)::

    torchrun --nproc_per_node=2 train.py exp_dir=exp/t trainer.num_steps=40
    torchrun --nproc_per_node=2 train.py exp_dir=exp/t trainer.num_steps=80 trainer.start_batch=40

The loop: epochs, gradient accumulation, clipping, non-finite steps, validation.

One *step* is ``grad_accum`` micro-batches then one optimizer update; ``batch_idx_train``
counts steps (icefall's name), checkpoints are taken between steps. A step in which any
rank saw a non-finite loss or gradient norm is skipped on every rank and counted;
``max_nonfinite`` such steps in a row stop training with an error.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from omegaconf import DictConfig

from auden.training.config import TrainConfig, as_train_config
from auden.training.distributed import (
    all_ranks_true,
    any_rank_true,
    average_gradients,
    cleanup_distributed,
    init_distributed,
    is_collective_failure,
    name_failed_ranks,
)
from auden.training.fsdp import grad_norm_and_clip
from auden.training.metrics import IntervalStats, ProgressClock, format_progress
from auden.training.trainer import Trainer
from auden.types import AudioBatch

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Too many steps in a row had a non-finite loss or gradient."""


def _empty_batch_loss(tr: Trainer) -> torch.Tensor:
    """A zero loss for a rank whose cuts were all unreadable: it still joins the others'
    gradient all-reduce (DDP), or their gathers and reduce-scatters (FSDP, whose
    collectives run in the forward: a forward of its previous batch, times zero)."""
    if not tr.sharded:
        return sum(p.sum() * 0.0 for p in tr.trainable_params)
    if tr.last_batch is None:
        raise RuntimeError(
            "the first batch of this rank holds no usable cut: under trainer.strategy=fsdp "
            "every rank must run a forward; check the data (skipped cuts are logged)"
        )
    with tr.autocast():
        return tr.ddp_model(tr.last_batch).loss * 0.0


def _micro_step(tr: Trainer, batch: AudioBatch, sync: bool, stats: IntervalStats) -> bool:
    """Forward + backward of one micro-batch; False if the loss was non-finite on any rank."""
    if batch.skipped_cut_ids:
        tr.state.skipped_cuts += len(batch.skipped_cut_ids)
        logger.warning(
            "skipped unusable cuts %s (%d so far)", batch.skipped_cut_ids, tr.state.skipped_cuts
        )
    tr.last_cut_ids = batch.cut_ids
    batch = batch.to(tr.dist.device)
    with tr.gradient_sync(sync):
        if len(batch) == 0:
            loss, num_targets, num_correct = _empty_batch_loss(tr), 0, None
        else:
            with tr.autocast():
                out = tr.ddp_model(batch)
            loss, num_targets, num_correct = out.loss, out.num_targets, out.num_correct
            tr.last_batch = batch
        if not all_ranks_true(bool(torch.isfinite(loss.detach()).all()), tr.dist.device):
            logger.warning("non-finite loss at step %d, cuts %s", tr.state.batch_idx_train + 1,
                           batch.cut_ids)
            return False
        tr.scaler.scale(loss / tr.cfg.trainer.grad_accum).backward()
    if len(batch):
        stats.add_batch(batch, float(loss.detach()), num_targets, num_correct)
    return True


def _optimizer_step(tr: Trainer, finite: bool, stats: IntervalStats) -> None:
    t = tr.cfg.trainer
    grad_norm = float("nan")
    if finite:
        average_gradients(tr.unsharded_params)  # FSDP's whole parameters (none under DDP)
        tr.scaler.unscale_(tr.optimizer)
        max_norm = t.grad_clip if t.grad_clip > 0 else float("inf")
        grad_norm = grad_norm_and_clip(tr.trainable_params, max_norm)
        # fp16: the scaler skips inf/nan steps itself and lowers its scale.
        finite = math.isfinite(grad_norm) or tr.scaler.is_enabled()
    if finite:
        tr.scaler.step(tr.optimizer)
        tr.scaler.update()
        tr.state.consecutive_nonfinite = 0
        stats.add_step(grad_norm)
    else:
        tr.state.nonfinite_steps += 1
        tr.state.consecutive_nonfinite += 1
        if tr.state.consecutive_nonfinite >= t.max_nonfinite:
            raise NonFiniteLossError(
                f"{tr.state.consecutive_nonfinite} steps in a row had a non-finite loss or "
                f"gradient (up to step {tr.state.batch_idx_train + 1}); lower the learning rate, "
                "check the data, or raise trainer.max_nonfinite"
            )
    tr.optimizer.zero_grad(set_to_none=True)
    tr.scheduler.step()
    tr.state.batch_idx_train += 1


@torch.no_grad()
def validate(tr: Trainer) -> IntervalStats | None:
    """Loss and token accuracy over the whole validation set, summed over ranks."""
    if tr.valid_loader is None:
        return None
    tr.model.eval()
    stats = IntervalStats()
    batches = _lockstep(tr.valid_loader, tr) if tr.sharded else ((b, True) for b in tr.valid_loader)
    try:
        for batch, counts in batches:
            if len(batch) == 0:
                continue
            batch = batch.to(tr.dist.device)
            with tr.autocast():
                out = tr.model(batch)
            if counts:
                stats.add_batch(batch, float(out.loss), out.num_targets, out.num_correct)
    finally:
        tr.model.train()
    return stats.reduced(tr.dist.device)


def _lockstep(loader, tr: Trainer):
    """``(batch, counts)`` until every rank's batches are done: a rank whose own ended
    repeats its last one, uncounted, because an FSDP forward is a collective."""
    last = None
    batches = (b for b in loader if len(b))
    while True:
        batch = next(batches, None)
        if not any_rank_true(batch is not None, tr.dist.device):
            return
        if batch is not None:
            last = batch
            yield batch, True
        elif last is None:
            raise RuntimeError(
                f"rank {tr.dist.rank} has no validation batch while others have: under "
                "trainer.strategy=fsdp every rank needs one (a larger valid set, or fewer ranks)"
            )
        else:
            yield last, False


class _Progress:
    """Interval statistics and the periodic log line / tensorboard scalars."""

    def __init__(self, tr: Trainer) -> None:
        self.tr = tr
        self.stats = IntervalStats()
        self.clock = ProgressClock(tr.state.batch_idx_train)
        self.steps_per_epoch: float | None = None  # known once an epoch has ended

    def total_steps(self) -> int | None:
        """Where training stops, for the ETA: num_steps, else epochs x steps per epoch."""
        t = self.tr.cfg.trainer
        by_epochs = (
            int(self.steps_per_epoch * t.num_epochs) if self.steps_per_epoch else None
        )
        if t.num_steps and by_epochs:
            return min(t.num_steps, by_epochs)
        return t.num_steps or by_epochs

    def log(self) -> None:
        tr, state = self.tr, self.tr.state
        stats = self.stats.reduced(tr.dist.device)
        self.stats = IntervalStats()
        seconds = self.clock.lap()
        if not tr.dist.is_main:
            return
        lr = tr.scheduler.get_last_lr()[0]
        extra = f"skipped cuts {state.skipped_cuts}, non-finite steps {state.nonfinite_steps}"
        logger.info(
            format_progress(state.epoch, state.batch_idx_train, stats, lr, seconds,
                            self.clock.eta(state.batch_idx_train, self.total_steps()), extra)
        )
        tr.tensorboard.scalars(
            "train",
            {
                "loss": stats.loss,
                "token_accuracy": stats.token_accuracy,
                "lr": lr,
                "grad_norm": stats.grad_norm,
                "audio_seconds_per_second": stats.audio_seconds / max(seconds, 1e-9),
                "padding_ratio": stats.padding_ratio,
                "skipped_cuts": state.skipped_cuts,
                "nonfinite_steps": state.nonfinite_steps,
            },
            state.batch_idx_train,
        )

    def log_validation(self) -> None:
        tr = self.tr
        stats = validate(tr)
        if stats is None or not tr.dist.is_main:
            return
        acc = stats.token_accuracy
        logger.info(
            "validation at step %d: loss %.4f%s over %d targets",
            tr.state.batch_idx_train, stats.loss,
            f", token acc {acc:.3f}" if acc is not None else "", int(stats.num_targets),
        )
        tr.tensorboard.scalars(
            "valid", {"loss": stats.loss, "token_accuracy": acc}, tr.state.batch_idx_train
        )


def _after_step(tr: Trainer, progress: _Progress) -> None:
    t, state = tr.cfg.trainer, tr.state
    step = state.batch_idx_train
    if tr.model_avg is not None and step % t.average_period == 0:
        tr.model_avg.update(tr.model, step, t.average_period)
    if step % t.log_interval == 0:
        progress.log()
    if step % t.valid_interval == 0:
        progress.log_validation()
    if step % t.save_every_n == 0:
        tr.save_iter_checkpoint()


def _run_epoch(tr: Trainer, progress: _Progress) -> bool:
    """Train one (possibly resumed) epoch; True if ``num_steps`` was reached."""
    t, state = tr.cfg.trainer, tr.state
    tr.scheduler.set_epoch(state.epoch)
    loader = tr.train_data.loader(state.epoch, skip_batches=state.batches_in_epoch)
    pending, finite = 0, True
    for batch in loader:
        state.batches_in_epoch += 1
        pending += 1
        sync = pending == t.grad_accum
        if finite:
            finite = _micro_step(tr, batch, sync, progress.stats)
        if sync:
            _optimizer_step(tr, finite, progress.stats)
            pending, finite = 0, True
            _after_step(tr, progress)
            if t.num_steps and state.batch_idx_train >= t.num_steps:
                return True
    if pending:  # the epoch ended inside an accumulation: use what was gathered
        if finite and not tr.sharded:  # they ran under DDP's no_sync: average them here
            average_gradients(tr.trainable_params)
        _optimizer_step(tr, finite, progress.stats)
        _after_step(tr, progress)
    return bool(t.num_steps and state.batch_idx_train >= t.num_steps)


def fit(tr: Trainer) -> None:
    """Train until ``num_steps`` steps or ``num_epochs`` epochs, whichever comes first."""
    t, state = tr.cfg.trainer, tr.state
    tr.model.train()
    progress = _Progress(tr)
    logger.info(
        "training from epoch %d, step %d (%d trainable parameters, %d ranks)",
        state.epoch, state.batch_idx_train, sum(p.numel() for p in tr.trainable_params),
        tr.dist.world_size,
    )
    while state.epoch <= t.num_epochs:
        if _run_epoch(tr, progress):
            if state.batch_idx_train % t.save_every_n != 0:
                tr.save_iter_checkpoint()  # the final state, for exact continuation
            break
        tr.save_epoch_checkpoint()
        logger.info("finished epoch %d at step %d", state.epoch, state.batch_idx_train)
        dropped = dict(tr.train_data.filter.dropped)
        if dropped:
            logger.info("cuts dropped by the filters so far (by reason): %s", dropped)
        progress.steps_per_epoch = state.batch_idx_train / state.epoch
        state.epoch += 1
        state.batches_in_epoch = 0
    logger.info(
        "done: %d steps, %d skipped cuts, %d non-finite steps",
        state.batch_idx_train, state.skipped_cuts, state.nonfinite_steps,
    )


def train(cfg: DictConfig | TrainConfig) -> Path:
    """Train as the config says; the entry point of every recipe's ``train.py``."""
    cfg = as_train_config(cfg)
    dist = init_distributed(cfg.trainer.dist_timeout)
    if not dist.is_main:
        logging.getLogger().setLevel(logging.WARNING)
    try:
        trainer = Trainer(cfg, dist)
        fit(trainer)
        trainer.tensorboard.close()
    except Exception as e:
        if dist.enabled and is_collective_failure(e):
            failure = name_failed_ranks(dist, e, cfg.trainer.dist_timeout)
            logger.error("%s", failure)
            raise failure from e
        raise
    finally:
        cleanup_distributed()
    return Path(trainer.exp_dir)
