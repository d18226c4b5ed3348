"""SwooshR and SwooshL, the Zipformer activations (Yao et al., ICLR 2024, section 3.5).

    SwooshR(x) = log(1 + exp(x - 1)) - 0.08 x - 0.313261687   (SwooshR(0) = 0)
    SwooshL(x) = log(1 + exp(x - 4)) - 0.08 x - 0.035

Both are computed by an autograd function with the analytic derivative
``sigmoid(x - shift) - 0.08`` so that only the input is kept for backward. If k2 is
importable and asked for, its fused kernels are used instead; pure torch is the default.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

_SLOPE = 0.08
_R_SHIFT, _R_OFFSET = 1.0, 0.313261687
_L_SHIFT, _L_OFFSET = 4.0, 0.035


class _Swoosh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, shift: float, offset: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.shift = shift
        return F.softplus(x - shift) - _SLOPE * x - offset

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad * (torch.sigmoid(x - ctx.shift) - _SLOPE), None, None


def swoosh_r(x: torch.Tensor) -> torch.Tensor:
    return _Swoosh.apply(x, _R_SHIFT, _R_OFFSET)


def swoosh_l(x: torch.Tensor) -> torch.Tensor:
    return _Swoosh.apply(x, _L_SHIFT, _L_OFFSET)


@functools.cache
def _k2_module():
    try:
        import k2  # noqa: PLC0415
    except ImportError:
        return None
    return k2 if hasattr(k2, "swoosh_r") and hasattr(k2, "swoosh_l") else None


def k2_swoosh_available() -> bool:
    return _k2_module() is not None


class SwooshR(nn.Module):
    def __init__(self, use_k2: bool = False) -> None:
        super().__init__()
        self.k2 = _k2_module() if use_k2 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.k2 is not None and x.dtype == torch.float32:
            return self.k2.swoosh_r(x)
        return swoosh_r(x)


class SwooshL(nn.Module):
    def __init__(self, use_k2: bool = False) -> None:
        super().__init__()
        self.k2 = _k2_module() if use_k2 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.k2 is not None and x.dtype == torch.float32:
            return self.k2.swoosh_l(x)
        return swoosh_l(x)
