"""Training statistics: sums over a log interval, reduced over ranks, logged and plotted.

Sums (not means) are kept so that aggregation over batches and ranks is exact: the loss
is ``sum(loss * num_targets) / sum(num_targets)``, the padding ratio is padded frames
over all frames of the batches, the speed is audio seconds over wall-clock seconds.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path

import torch

from auden.training.distributed import all_reduce_sum
from auden.types import AudioBatch

logger = logging.getLogger(__name__)


@dataclass
class IntervalStats:
    loss_sum: float = 0.0
    num_targets: float = 0.0
    num_correct: float = 0.0
    targets_with_accuracy: float = 0.0
    audio_seconds: float = 0.0
    valid_frames: float = 0.0
    total_frames: float = 0.0
    grad_norm_sum: float = 0.0
    num_steps: float = 0.0

    def add_batch(self, batch: AudioBatch, loss: float, num_targets: int, num_correct) -> None:
        self.loss_sum += loss * num_targets
        self.num_targets += num_targets
        if num_correct is not None:
            self.num_correct += num_correct
            self.targets_with_accuracy += num_targets
        self.audio_seconds += sum(c.duration for c in batch.cuts)
        self.valid_frames += float(batch.feature_lens.sum())
        self.total_frames += float(batch.features.shape[0] * batch.features.shape[1])

    def add_step(self, grad_norm: float) -> None:
        if math.isfinite(grad_norm):
            self.grad_norm_sum += grad_norm
            self.num_steps += 1

    def reduced(self, device: torch.device) -> IntervalStats:
        """The sums over all ranks (a collective: every rank must call it)."""
        names = [f.name for f in fields(self)]
        values = all_reduce_sum([getattr(self, n) for n in names], device)
        return IntervalStats(**dict(zip(names, values)))

    @property
    def loss(self) -> float:
        return self.loss_sum / self.num_targets if self.num_targets else float("nan")

    @property
    def token_accuracy(self) -> float | None:
        if not self.targets_with_accuracy:
            return None
        return self.num_correct / self.targets_with_accuracy

    @property
    def padding_ratio(self) -> float:
        return 1.0 - self.valid_frames / self.total_frames if self.total_frames else 0.0

    @property
    def grad_norm(self) -> float:
        return self.grad_norm_sum / self.num_steps if self.num_steps else float("nan")


class ProgressClock:
    """Wall-clock time per step, for the speed and the ETA of the progress line."""

    def __init__(self, start_step: int) -> None:
        self.start_time = time.monotonic()
        self.start_step = start_step
        self.interval_start = self.start_time

    def lap(self) -> float:
        """Seconds since the previous lap."""
        now = time.monotonic()
        elapsed, self.interval_start = now - self.interval_start, now
        return elapsed

    def eta(self, step: int, total_steps: int | None) -> str:
        done = step - self.start_step
        if not total_steps or done <= 0:
            return "?"
        per_step = (time.monotonic() - self.start_time) / done
        return str(timedelta(seconds=int(per_step * max(0, total_steps - step))))


class TensorBoard:
    """Scalars under ``exp_dir/tensorboard`` on rank 0; a no-op elsewhere or when disabled."""

    def __init__(self, exp_dir: str | Path, enabled: bool) -> None:
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(Path(exp_dir) / "tensorboard"))

    def scalars(self, prefix: str, values: dict[str, float | None], step: int) -> None:
        if self.writer is None:
            return
        for name, value in values.items():
            if value is not None and math.isfinite(value):
                self.writer.add_scalar(f"{prefix}/{name}", value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def format_progress(
    epoch: int, step: int, stats: IntervalStats, lr: float, seconds: float, eta: str, extra: str
) -> str:
    acc = stats.token_accuracy
    return (
        f"epoch {epoch}, step {step}: loss {stats.loss:.4f}"
        + (f", token acc {acc:.3f}" if acc is not None else "")
        + f", lr {lr:.3g}, grad norm {stats.grad_norm:.3g}"
        + f", {stats.audio_seconds / max(seconds, 1e-9):.1f} audio s/s"
        + f", padding {100 * stats.padding_ratio:.1f}%"
        + f", eta {eta}"
        + (f", {extra}" if extra else "")
    )
