"""ScaledAdam and Eden: the schedule's values, relative updates, learning, resume."""

import copy

import pytest
import torch
from torch import nn

from auden.training.scaled_adam import Eden, ScaledAdam, eden_lr_factor


def test_eden_schedule_values_match_the_formula():
    opt = ScaledAdam([nn.Parameter(torch.ones(3, 3))], lr=0.04)
    sched = Eden(opt, lr_batches=100, lr_epochs=2, warmup_batches=10, warmup_start=0.5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.04 * 0.5)  # batch 0: start of warm-up
    for _ in range(5):
        opt.step()
        sched.step()
    assert sched.batch == 5
    expected = 0.04 * (0.5 + 0.5 * 5 / 10) * ((25 + 100**2) / 100**2) ** -0.25
    assert sched.get_last_lr()[0] == pytest.approx(expected)
    sched.step_batch(100)
    sched.step_epoch(2)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.04 * 2**-0.25 * 2**-0.25)
    assert eden_lr_factor(7500, 0, 7500, 3.5, 500) == pytest.approx(2**-0.25)


def test_eden_without_decay_is_constant_after_warmup():
    opt = ScaledAdam([nn.Parameter(torch.ones(2, 2))], lr=0.01)
    sched = Eden(opt, lr_batches=0, lr_epochs=0, warmup_batches=4)
    lrs = []
    for _ in range(10):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[:3] == pytest.approx([0.01 * (0.5 + 0.5 * b / 4) for b in (1, 2, 3)])
    assert lrs[3:] == pytest.approx([0.01] * 7)


def test_updates_are_relative_to_each_tensors_scale():
    big = nn.Parameter(10.0 * torch.ones(4, 4))
    small = nn.Parameter(0.1 * torch.ones(4, 4))
    opt = ScaledAdam([big, small], lr=0.01, clipping_scale=None)
    (big.sum() + small.sum()).backward()
    before_big, before_small = big.detach().clone(), small.detach().clone()
    opt.step()
    rel_big = ((big - before_big).abs().mean() / 10.0).item()
    rel_small = ((small - before_small).abs().mean() / 0.1).item()
    assert rel_big == pytest.approx(rel_small, rel=1e-3)
    assert rel_big > 0


def _regression_problem():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = torch.sin(x @ torch.randn(8, 1)) + 0.5 * x[:, :1]
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
    return model, x, y


def test_scaled_adam_with_eden_reduces_a_loss():
    model, x, y = _regression_problem()
    opt = ScaledAdam(model.parameters(), lr=0.05)
    sched = Eden(opt, lr_batches=100, lr_epochs=1, warmup_batches=10)
    losses = []
    for _ in range(150):
        loss = nn.functional.mse_loss(model(x), y)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])


def test_resume_from_state_dict_continues_exactly():
    model, x, y = _regression_problem()
    opt = ScaledAdam(model.parameters(), lr=0.05)
    sched = Eden(opt, lr_batches=50, lr_epochs=1, warmup_batches=5)

    def train(m, o, s, steps):
        for _ in range(steps):
            o.zero_grad()
            nn.functional.mse_loss(m(x), y).backward()
            o.step()
            s.step()

    train(model, opt, sched, 15)
    model2 = copy.deepcopy(model)
    opt2 = ScaledAdam(model2.parameters(), lr=0.05)
    sched2 = Eden(opt2, lr_batches=50, lr_epochs=1, warmup_batches=5)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    sched2.load_state_dict(sched.state_dict())
    train(model, opt, sched, 10)
    train(model2, opt2, sched2, 10)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)


def test_a_gradient_spike_is_clipped_to_twice_the_median_norm():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(16, 16))
    opt = ScaledAdam([w], lr=0.01, clipping_scale=2.0)
    for step in range(30):
        opt.zero_grad()
        scale = 1000.0 if step == 29 else 1.0
        (scale * (w * torch.randn(16, 16)).sum()).backward()
        opt.step()
    assert opt.state["clipping"]["num_clipped"] >= 1


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="lr"):
        ScaledAdam([nn.Parameter(torch.ones(2))], lr=0.0)
