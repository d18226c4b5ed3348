"""ScaledAdam and the Eden schedule, the optimizer the Zipformer paper trains with (section 3.6).

ScaledAdam is Adam whose step for a tensor is proportional to that tensor's RMS, so every
weight matrix changes by the same *relative* amount, plus an explicitly learned scale
(the gradient of the loss w.r.t. the tensor's log-scale, Adam-normalised). Gradients are
clipped at ``clipping_scale`` times the median of recent (RMS-weighted) gradient norms.

Eden decays the learning rate with both batches and epochs, after a linear warm-up::

    lr = base_lr * ((b^2 + B^2) / B^2)^-0.25 * ((e^2 + E^2) / E^2)^-0.25 * warmup(b)
    warmup(b) = warmup_start + (1 - warmup_start) * b / warmup_batches   for b < warmup_batches
              = 1                                                          otherwise

with ``B = lr_batches`` and ``E = lr_epochs``; a value <= 0 turns that decay off, so
``Eden(opt, lr_batches=0, lr_epochs=0, warmup_batches=500)`` is constant after warm-up.

Usage (the trainer calls ``scheduler.step()`` once per batch, ``step_epoch`` per epoch)::

    optimizer = ScaledAdam(model.parameters(), lr=0.045)
    scheduler = Eden(optimizer, lr_batches=7500, lr_epochs=3.5, warmup_batches=500)
    for epoch in range(1, num_epochs + 1):
        scheduler.step_epoch(epoch)
        for batch in loader:
            loss(batch).backward(); optimizer.step(); optimizer.zero_grad(); scheduler.step()
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

logger = logging.getLogger(__name__)


class ScaledAdam(Optimizer):
    """Adam with updates scaled by each tensor's RMS and a learned tensor scale.

    Scalars (``numel() == 1``) get a plain Adam step at ``lr * scalar_lr_scale`` and are
    clamped to ``[-scalar_max, scalar_max]``. A tensor's RMS is kept within
    ``[param_min_rms, param_max_rms]``.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 0.045,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-8,
        scalar_lr_scale: float = 0.1,
        param_min_rms: float = 1e-5,
        param_max_rms: float = 3.0,
        scalar_max: float = 10.0,
        clipping_scale: float | None = 2.0,
        clipping_window: int = 128,
    ) -> None:
        if lr <= 0:
            raise ValueError(f"ScaledAdam lr must be > 0, got {lr}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"ScaledAdam betas must lie in [0, 1), got {betas}")
        defaults = dict(
            lr=lr, betas=tuple(betas), eps=eps, scalar_lr_scale=scalar_lr_scale,
            param_min_rms=param_min_rms, param_max_rms=param_max_rms, scalar_max=scalar_max,
        )
        super().__init__(params, defaults)
        self.clipping_scale = clipping_scale
        self.clipping_window = clipping_window
        # Recent gradient norms live in the optimizer state so that resume restores them.
        self.state["clipping"] = {"norms": [], "num_clipped": 0}

    def _gather(self) -> list[dict]:
        """Per group: tensors and scalars that have gradients, with each tensor's RMS."""
        gathered = []
        for group in self.param_groups:
            entry = {"group": group, "tensors": [], "scalars": []}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("ScaledAdam does not support sparse gradients")
                entry["tensors" if p.numel() > 1 else "scalars"].append(p)
            tensors = entry["tensors"]
            norms = torch.stack(torch._foreach_norm(tensors)).tolist() if tensors else []
            entry["rms"] = [n / math.sqrt(p.numel()) for n, p in zip(norms, tensors)]
            gathered.append(entry)
        return gathered

    def _clip_factor(self, gathered: list[dict]) -> float:
        """``clipping_scale * median`` of recent RMS-weighted gradient norms, over this norm."""
        if self.clipping_scale is None:
            return 1.0
        sumsq = 0.0
        for entry in gathered:
            min_rms = entry["group"]["param_min_rms"]
            params = entry["tensors"] + entry["scalars"]
            if not params:
                continue
            grad_norms = torch.stack(torch._foreach_norm([p.grad for p in params])).tolist()
            weights = [max(r, min_rms) ** 2 for r in entry["rms"]] + [1.0] * len(entry["scalars"])
            sumsq += sum(w * g * g for w, g in zip(weights, grad_norms))
        norm = math.sqrt(sumsq)
        if not math.isfinite(norm):
            logger.warning("ScaledAdam: non-finite gradient norm %s; skipping this step", norm)
            return 0.0
        clipping = self.state["clipping"]
        norms: list[float] = clipping["norms"]
        factor = 1.0
        if len(norms) >= 10:
            threshold = self.clipping_scale * sorted(norms)[len(norms) // 2]
            if norm > threshold:
                factor = threshold / norm
                clipping["num_clipped"] += 1
                logger.debug("ScaledAdam: clipping grad norm %.3g to %.3g", norm, threshold)
        norms.append(norm)
        del norms[: max(0, len(norms) - self.clipping_window)]
        return factor

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        gathered = self._gather()
        clip = self._clip_factor(gathered)
        if clip == 0.0:
            return loss
        for entry in gathered:
            group = entry["group"]
            for p in entry["tensors"] + entry["scalars"]:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["delta"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    state["scale_exp_avg_sq"] = 0.0
                state["step"] += 1
            if entry["tensors"]:
                self._tensor_step(group, entry["tensors"], entry["rms"], clip)
            for p in entry["scalars"]:
                self._scalar_step(group, p, p.grad * clip, self.state[p])
        return loss

    def _tensor_step(
        self, group: dict, params: list[torch.Tensor], rms: list[float], clip: float
    ) -> None:
        """One step for all non-scalar tensors of a group, with fused (foreach) kernels."""
        beta1, beta2 = group["betas"]
        lr, eps, size_lr = group["lr"], group["eps"], group["lr"] * group["scalar_lr_scale"]
        states = [self.state[p] for p in params]
        grads = [p.grad for p in params]
        if clip != 1.0:
            grads = torch._foreach_mul(grads, clip)
        deltas = [s["delta"] for s in states]
        sqs = [s["exp_avg_sq"] for s in states]
        sqrt_bc2 = [math.sqrt(1 - beta2 ** s["step"]) for s in states]
        torch._foreach_mul_(deltas, beta1)

        # The scale: d loss / d log(scale) = sum(grad * p), Adam-normalised.
        scale_grads = torch.stack([(g * p).sum() for g, p in zip(grads, params)]).tolist()
        scale_steps = []
        for state, sg, r, c in zip(states, scale_grads, rms, sqrt_bc2):
            state["scale_exp_avg_sq"] = beta2 * state["scale_exp_avg_sq"] + (1 - beta2) * sg * sg
            step = -size_lr * sg / (math.sqrt(state["scale_exp_avg_sq"]) / c + eps)
            if r < group["param_min_rms"]:
                step = size_lr
            elif r > group["param_max_rms"]:
                step = -size_lr
            scale_steps.append(step * (1 - beta1))
        torch._foreach_add_(deltas, torch._foreach_mul(params, scale_steps))

        # The direction: an Adam step, times the tensor's RMS.
        torch._foreach_mul_(sqs, beta2)
        torch._foreach_addcmul_(sqs, grads, grads, value=1 - beta2)
        denoms = torch._foreach_sqrt(sqs)
        torch._foreach_add_(denoms, [eps * c for c in sqrt_bc2])
        step_sizes = [
            -lr * (1 - beta1) * max(r, group["param_min_rms"]) * c for r, c in zip(rms, sqrt_bc2)
        ]
        torch._foreach_addcdiv_(deltas, grads, denoms, step_sizes)
        torch._foreach_add_(params, deltas)

    @staticmethod
    def _scalar_step(group: dict, p: torch.Tensor, grad: torch.Tensor, state: dict) -> None:
        beta1, beta2 = group["betas"]
        bias_correction2 = 1 - beta2 ** state["step"]
        delta = state["delta"].mul_(beta1)
        exp_avg_sq = state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (exp_avg_sq / bias_correction2).sqrt().add_(group["eps"])
        delta.add_(grad / denom, alpha=-group["lr"] * group["scalar_lr_scale"] * (1 - beta1))
        p.add_(delta).clamp_(-group["scalar_max"], group["scalar_max"])


def eden_lr_factor(
    batch: float, epoch: float, lr_batches: float, lr_epochs: float,
    warmup_batches: float, warmup_start: float = 0.5,
) -> float:
    """The factor Eden multiplies the base learning rate by (see the module docstring)."""
    factor = 1.0
    if lr_batches > 0:
        factor *= ((batch**2 + lr_batches**2) / lr_batches**2) ** -0.25
    if lr_epochs > 0:
        factor *= ((epoch**2 + lr_epochs**2) / lr_epochs**2) ** -0.25
    if warmup_batches > 0 and batch < warmup_batches:
        factor *= warmup_start + (1.0 - warmup_start) * batch / warmup_batches
    return factor


class Eden(LRScheduler):
    """The Eden schedule. ``step()`` counts one batch; ``step_epoch(e)`` sets the epoch.

    ``step_batch(b)`` / ``step_epoch(e)`` set the counters explicitly (icefall's calls);
    ``state_dict()`` holds both counters, so resume continues the same curve.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        lr_batches: float = 7500.0,
        lr_epochs: float = 3.5,
        warmup_batches: float = 500.0,
        warmup_start: float = 0.5,
        last_epoch: int = -1,
    ) -> None:
        self.lr_batches = lr_batches
        self.lr_epochs = lr_epochs
        self.warmup_batches = warmup_batches
        self.warmup_start = warmup_start
        self.epoch = 0
        # LRScheduler's own counter, ``last_epoch``, counts batches here.
        super().__init__(optimizer, last_epoch)

    @property
    def batch(self) -> int:
        return self.last_epoch

    def _lrs(self) -> list[float]:
        factor = eden_lr_factor(
            self.last_epoch, self.epoch, self.lr_batches, self.lr_epochs,
            self.warmup_batches, self.warmup_start,
        )
        return [base * factor for base in self.base_lrs]

    def get_lr(self) -> list[float]:
        return self._lrs()

    def _apply(self) -> None:
        lrs = self._lrs()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = lrs

    def step_batch(self, batch: int | None = None) -> None:
        self.last_epoch = self.last_epoch + 1 if batch is None else batch
        self._apply()

    def step_epoch(self, epoch: int | None = None) -> None:
        self.epoch = self.epoch + 1 if epoch is None else epoch
        self._apply()
