"""Checkpoint resolution and averaging, checked against hand-computed tensors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from auden.checkpoint import (
    CheckpointSpec,
    MissingCheckpointsError,
    average_running_models,
    average_state_dicts,
    find_checkpoints,
    resolve_checkpoint,
)


def _save(path: Path, model: dict, *, model_avg: dict | None = None, step: int = 0, epoch: int = 0):
    ckpt = {"model": model, "batch_idx_train": step, "epoch": epoch, "config": {"tag": path.name}}
    if model_avg is not None:
        ckpt["model_avg"] = model_avg
    torch.save(ckpt, path)


def _weights(value: float) -> dict:
    return {
        "w": torch.full((2, 3), value),
        "b": torch.tensor([value, -value]),
        "count": torch.tensor(7, dtype=torch.int64),
    }


def _simulate_training(exp_dir: Path, steps: int, save_every: int, period: int, seed: int = 0):
    """Random weights per step, icefall's running average every `period` steps, saved
    as checkpoint-<step>.pt every `save_every` steps. Returns the weights of every step."""
    g = torch.Generator().manual_seed(seed)
    history = {}
    avg = None
    for t in range(1, steps + 1):
        cur = {"w": torch.randn(4, generator=g)}
        history[t] = cur
        if t % period == 0:
            w = period / t
            avg = (
                {k: v.double().clone() for k, v in cur.items()}
                if avg is None
                else {k: avg[k] * (1 - w) + cur[k].double() * w for k in avg}
            )
        if t % save_every == 0:
            torch.save(
                {
                    "model": cur,
                    "model_avg": avg,
                    "batch_idx_train": t,
                    "epoch": 1,
                    "config": {"trainer": {"average_period": period}},
                },
                exp_dir / f"checkpoint-{t}.pt",
            )
    return history


def test_plain_mean_of_three_checkpoints_by_hand(tmp_path):
    for i, v in enumerate([1.0, 2.0, 6.0]):
        _save(tmp_path / f"checkpoint-{(i + 1) * 10}.pt", _weights(v), step=(i + 1) * 10)
    avg = average_state_dicts(find_checkpoints(tmp_path))
    assert torch.equal(avg["w"], torch.full((2, 3), 3.0))
    assert torch.equal(avg["b"], torch.tensor([3.0, -3.0]))
    assert avg["count"].item() == 7 and avg["count"].dtype == torch.int64
    assert avg["w"].dtype == torch.float32


def test_running_average_between_two_checkpoints_by_hand(tmp_path):
    # avg over (0, 4] is 2 and over (0, 10] is 5, so over (4, 10] it is (5*10 - 2*4) / 6 = 7.
    _save(
        tmp_path / "checkpoint-4.pt",
        {"w": torch.zeros(2)},
        model_avg={"w": torch.tensor([2.0, 2.0], dtype=torch.float64)},
        step=4,
    )
    _save(
        tmp_path / "checkpoint-10.pt",
        {"w": torch.zeros(2)},
        model_avg={"w": torch.tensor([5.0, -1.0], dtype=torch.float64)},
        step=10,
    )
    avg = average_running_models(tmp_path / "checkpoint-4.pt", tmp_path / "checkpoint-10.pt")
    assert torch.allclose(avg["w"], torch.tensor([7.0, (-10.0 - 8.0) / 6]))
    assert avg["w"].dtype == torch.float32  # the dtype of "model", not of model_avg


def test_running_average_recovers_the_mean_of_the_steps_in_between(tmp_path):
    history = _simulate_training(tmp_path, steps=60, save_every=10, period=2)
    path = resolve_checkpoint(tmp_path, CheckpointSpec(iter=50, avg=3))
    assert path.name == "averaged-iter-50-avg-3.pt"
    got = torch.load(path, weights_only=True)["model"]["w"]
    # (20, 50] with updates every 2 steps: the weights of steps 22, 24, ..., 50
    expected = torch.stack([history[t]["w"] for t in range(22, 51, 2)]).mean(0)
    assert torch.allclose(got, expected, atol=1e-6)


def test_use_averaged_model_false_takes_the_plain_mean(tmp_path):
    history = _simulate_training(tmp_path, steps=40, save_every=10, period=1)
    path = resolve_checkpoint(tmp_path, CheckpointSpec(iter=40, avg=2, use_averaged_model=False))
    expected = (history[40]["w"] + history[30]["w"]) / 2
    assert torch.allclose(torch.load(path, weights_only=True)["model"]["w"], expected)


def test_iter_mode_uses_the_newest_checkpoints_at_or_below_iter(tmp_path):
    for step, v in [(10, 1.0), (20, 2.0), (30, 4.0), (40, 100.0)]:
        _save(tmp_path / f"checkpoint-{step}.pt", _weights(v), step=step)
    path = resolve_checkpoint(tmp_path, CheckpointSpec(iter=35, avg=2))
    ckpt = torch.load(path, weights_only=True)
    assert torch.equal(ckpt["model"]["w"], torch.full((2, 3), 3.0))
    assert ckpt["config"] == {"tag": "checkpoint-30.pt"}  # config of the newest one used
    assert ckpt["averaged_from"] == {
        "method": "mean",
        "sources": ["checkpoint-30.pt", "checkpoint-20.pt"],
    }


def test_epoch_mode_plain_mean_and_running_average(tmp_path):
    for e, v in [(1, 1.0), (2, 3.0), (3, 5.0)]:
        _save(tmp_path / f"epoch-{e}.pt", _weights(v), step=e * 10, epoch=e)
    path = resolve_checkpoint(tmp_path, CheckpointSpec(epoch=3, avg=2))
    assert path.name == "averaged-epoch-3-avg-2.pt"
    assert torch.equal(torch.load(path, weights_only=True)["model"]["w"], torch.full((2, 3), 4.0))

    # with model_avg: epochs 2..3 are the steps in (epoch-1's step, epoch-3's step]
    run = tmp_path / "run"
    run.mkdir()
    for e, step, a in [(1, 10, 1.0), (2, 20, 2.0), (3, 30, 4.0)]:
        _save(
            run / f"epoch-{e}.pt",
            {"w": torch.zeros(1)},
            model_avg={"w": torch.tensor([a], dtype=torch.float64)},
            step=step,
            epoch=e,
        )
    got = torch.load(resolve_checkpoint(run, CheckpointSpec(epoch=3, avg=2)), weights_only=True)
    assert torch.allclose(got["model"]["w"], torch.tensor([(4.0 * 30 - 1.0 * 10) / 20]))
    # avg == epoch: from step 0, i.e. epoch-3's running average itself
    got = torch.load(resolve_checkpoint(run, CheckpointSpec(epoch=3, avg=3)), weights_only=True)
    assert torch.allclose(got["model"]["w"], torch.tensor([4.0]))


def test_filename_wins_over_iter_and_epoch(tmp_path):
    _save(tmp_path / "checkpoint-10.pt", _weights(1.0), step=10)
    spec = CheckpointSpec(filename="checkpoint-10.pt", iter=10, epoch=1, avg=1)
    assert resolve_checkpoint(tmp_path, spec) == tmp_path / "checkpoint-10.pt"
    absolute = CheckpointSpec(filename=str(tmp_path / "checkpoint-10.pt"))
    assert resolve_checkpoint("/nonexistent", absolute) == tmp_path / "checkpoint-10.pt"
    with pytest.raises(FileNotFoundError, match="checkpoint.model.filename 'nope.pt'"):
        resolve_checkpoint(tmp_path, CheckpointSpec(filename="nope.pt"))


def test_iter_wins_over_epoch_and_pretrained_is_the_default(tmp_path):
    _save(tmp_path / "checkpoint-10.pt", _weights(1.0), step=10)
    _save(tmp_path / "epoch-1.pt", _weights(2.0), step=12, epoch=1)
    _save(tmp_path / "pretrained.pt", _weights(3.0))
    assert resolve_checkpoint(tmp_path, CheckpointSpec(iter=10, epoch=1, avg=1)).name == (
        "averaged-iter-10-avg-1.pt"
    )
    assert resolve_checkpoint(tmp_path, CheckpointSpec(epoch=1, avg=1)).name == (
        "averaged-epoch-1-avg-1.pt"
    )
    assert (
        resolve_checkpoint(tmp_path, CheckpointSpec(iter=10, avg=0)) == tmp_path / "pretrained.pt"
    )
    assert resolve_checkpoint(tmp_path, CheckpointSpec()) == tmp_path / "pretrained.pt"


def test_missing_checkpoints_error_lists_the_ones_that_exist(tmp_path):
    _save(tmp_path / "checkpoint-10.pt", _weights(1.0), step=10)
    _save(tmp_path / "checkpoint-20.pt", _weights(1.0), step=20)
    _save(tmp_path / "epoch-1.pt", _weights(1.0), step=25, epoch=1)
    with pytest.raises(MissingCheckpointsError) as err:
        resolve_checkpoint(tmp_path, CheckpointSpec(iter=20, avg=5))
    message = str(err.value)
    assert "checkpoint-20.pt, checkpoint-10.pt, epoch-1.pt" in message
    assert "avg=5" in message
    with pytest.raises(MissingCheckpointsError, match="epoch-2.pt.*epoch-1.pt"):
        resolve_checkpoint(tmp_path, CheckpointSpec(epoch=3, avg=2))
    with pytest.raises(FileNotFoundError, match="pretrained.pt.*checkpoint-20.pt"):
        resolve_checkpoint(tmp_path, CheckpointSpec())


def test_averaged_file_is_made_once_and_reused(tmp_path):
    _simulate_training(tmp_path, steps=30, save_every=10, period=1)
    spec = CheckpointSpec(iter=30, avg=2)
    path = resolve_checkpoint(tmp_path, spec)
    made = path.stat().st_mtime_ns
    os.utime(path, ns=(made - 10**9, made - 10**9))  # if it were rewritten, the mtime would move
    assert resolve_checkpoint(tmp_path, spec) == path
    assert path.stat().st_mtime_ns == made - 10**9
    # once its sources are cleaned up it is still reused
    for p in find_checkpoints(tmp_path):
        p.unlink()
    assert resolve_checkpoint(tmp_path, spec) == path
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_averaged_file_is_remade_when_asked_for_another_method(tmp_path):
    history = _simulate_training(tmp_path, steps=30, save_every=10, period=1)
    running = resolve_checkpoint(tmp_path, CheckpointSpec(iter=30, avg=1))
    first = torch.load(running, weights_only=True)
    assert first["averaged_from"]["method"] == "running_average"
    expected_running = torch.stack([history[t]["w"] for t in range(21, 31)]).mean(0)
    assert torch.allclose(first["model"]["w"], expected_running, atol=1e-6)
    plain = resolve_checkpoint(tmp_path, CheckpointSpec(iter=30, avg=1, use_averaged_model=False))
    assert torch.equal(torch.load(plain, weights_only=True)["model"]["w"], history[30]["w"])


def test_checkpoints_with_different_parameters_are_rejected(tmp_path):
    _save(tmp_path / "checkpoint-10.pt", {"a": torch.zeros(1)}, step=10)
    _save(tmp_path / "checkpoint-20.pt", {"b": torch.zeros(1)}, step=20)
    with pytest.raises(ValueError, match="different parameters.*'b'.*'a'"):
        resolve_checkpoint(tmp_path, CheckpointSpec(iter=20, avg=2))


def test_unreadable_checkpoint_is_named(tmp_path):
    _save(tmp_path / "checkpoint-10.pt", _weights(1.0), step=10)
    (tmp_path / "checkpoint-20.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="checkpoint '.*checkpoint-20.pt' cannot be loaded"):
        resolve_checkpoint(tmp_path, CheckpointSpec(iter=20, avg=2))


def test_legacy_format_checkpoints_are_averaged_too(tmp_path):
    # no memory map for the pre-zip format: read whole, with the same result
    for step, v in [(10, 1.0), (20, 3.0)]:
        torch.save(
            {"model": _weights(v), "batch_idx_train": step},
            tmp_path / f"checkpoint-{step}.pt",
            _use_new_zipfile_serialization=False,
        )
    path = resolve_checkpoint(tmp_path, CheckpointSpec(iter=20, avg=2))
    assert torch.equal(torch.load(path, weights_only=True)["model"]["w"], torch.full((2, 3), 2.0))


def test_run_shorter_than_average_period_evaluates_with_the_plain_mean(
    tmp_path, training_setup, caplog
):
    # A first trial run: 12 steps (an epoch is 10), a checkpoint every 4, the running
    # average every 200 steps, so model_avg never moved from the initial weights.
    # iter=12 avg=2 used to raise "cannot average from checkpoint-4.pt (step 0) to
    # checkpoint-12.pt (step 0)"; the epoch average silently gave the initial weights.
    from auden.training import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        exp_dir = tmp_path / "exp"
        train(training_setup.train_config(exp_dir, num_steps=12, save_every_n=4, average_period=200))
    finally:
        torch.set_num_threads(threads)
    ckpts = {n: torch.load(exp_dir / f"checkpoint-{n}.pt", weights_only=True) for n in (8, 12)}
    expected = {k: (ckpts[12]["model"][k] + ckpts[8]["model"][k]) / 2 for k in ckpts[12]["model"]}
    with caplog.at_level("WARNING", logger="auden.checkpoint.resolve"):
        path = resolve_checkpoint(exp_dir, CheckpointSpec(iter=12, avg=2))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "plain mean" in warnings[0] and "average_period" in warnings[0]
    got = torch.load(path, weights_only=True)
    assert got["averaged_from"] == {
        "method": "mean", "sources": ["checkpoint-12.pt", "checkpoint-8.pt"]
    }
    for k, v in expected.items():
        if v.is_floating_point():
            torch.testing.assert_close(got["model"][k], v)
    assert any(
        not torch.equal(got["model"][k], ckpts[12]["model_avg"][k].to(v.dtype))
        for k, v in expected.items() if v.is_floating_point()
    ), "the average must not be the never-updated running average (the initial weights)"

    # the epoch average from step 0 must not hand back the initial weights either
    epoch = resolve_checkpoint(exp_dir, CheckpointSpec(epoch=1, avg=1))
    assert torch.load(epoch, weights_only=True)["averaged_from"]["method"] == "mean"


def test_too_few_checkpoints_for_the_running_average_take_the_plain_mean(tmp_path, caplog):
    _simulate_training(tmp_path, steps=20, save_every=10, period=1)
    with caplog.at_level("WARNING", logger="auden.checkpoint.resolve"):
        path = resolve_checkpoint(tmp_path, CheckpointSpec(iter=20, avg=2))
    assert "needs 3 checkpoint" in caplog.text
    made = torch.load(path, weights_only=True)["averaged_from"]
    assert made == {"method": "mean", "sources": ["checkpoint-20.pt", "checkpoint-10.pt"]}
