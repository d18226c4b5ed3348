"""SwooshR / SwooshL and BiasNorm against their definitions in the paper."""

import pytest
import torch

from auden.models.encoders.zipformer.activations import (
    SwooshL,
    SwooshR,
    k2_swoosh_available,
    swoosh_l,
    swoosh_r,
)
from auden.models.encoders.zipformer.layers import BiasNorm


def swoosh_r_definition(x):
    return torch.log(1 + torch.exp(x - 1)) - 0.08 * x - 0.313261687


def swoosh_l_definition(x):
    return torch.log(1 + torch.exp(x - 4)) - 0.08 * x - 0.035


@pytest.mark.parametrize(
    "fn, definition", [(swoosh_r, swoosh_r_definition), (swoosh_l, swoosh_l_definition)]
)
def test_swoosh_values_and_gradients_match_the_definitions(fn, definition):
    torch.manual_seed(0)
    x = (torch.randn(200, dtype=torch.float64) * 6).requires_grad_()
    assert torch.allclose(fn(x), definition(x), atol=1e-12)
    (ours,) = torch.autograd.grad(fn(x).sum(), x)
    (reference,) = torch.autograd.grad(definition(x).sum(), x)
    assert torch.allclose(ours, reference, atol=1e-12)
    assert torch.autograd.gradcheck(fn, (x[:20].detach().requires_grad_(),))
    assert torch.autograd.gradgradcheck(lambda v: definition(v), (x[:5].detach().requires_grad_(),))


def test_swoosh_r_is_zero_at_zero_and_modules_use_the_functions():
    assert abs(swoosh_r(torch.zeros(1, dtype=torch.float64)).item()) < 1e-9
    x = torch.randn(7)
    assert torch.equal(SwooshR()(x), swoosh_r(x)) and torch.equal(SwooshL()(x), swoosh_l(x))


@pytest.mark.skipif(not k2_swoosh_available(), reason="k2 is not installed")
def test_k2_swoosh_agrees_with_the_pure_torch_path():
    x = torch.randn(1000) * 5
    assert torch.allclose(SwooshR(use_k2=True)(x), swoosh_r(x), atol=1e-5)
    assert torch.allclose(SwooshL(use_k2=True)(x), swoosh_l(x), atol=1e-5)


def test_bias_norm_divides_by_rms_around_the_learned_bias():
    torch.manual_seed(0)
    norm = BiasNorm(6).double()
    with torch.no_grad():
        norm.bias.copy_(torch.randn(6))
    x = torch.randn(3, 6, dtype=torch.float64)
    rms = ((x - norm.bias) ** 2).mean(-1, keepdim=True).add(norm.eps).sqrt()
    assert torch.allclose(norm(x), x / rms * torch.exp(torch.tensor(1.0)))
    assert torch.autograd.gradcheck(norm, (x.requires_grad_(),))
