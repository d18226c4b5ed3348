"""The recipe's train.py under torchrun with two CPU ranks, as a user runs it.

    cd egs/mini_en && torchrun --nproc_per_node=2 train.py exp_dir=exp/t trainer.num_steps=40

with the tiny corpus and a micro CTC model in place of mini_en's data and model.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tinycorpus import write_data_config

from auden.checkpoint import find_checkpoints, load_checkpoint

RECIPE = Path(__file__).resolve().parents[1] / "egs" / "mini_en"
VENV_BIN = Path(sys.executable).parent


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


def _torchrun(args: list[str]) -> list[str]:
    return [str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "train.py", *args]


def _run(cmd: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, cwd=RECIPE, env=_env(), capture_output=True, text=True, timeout=timeout
    )


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def _scalars(event_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(event_dir))
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_two_ranks_train_on_different_batches_and_rank0_writes_checkpoints_and_events(
    training_setup, tmp_path
):
    exp = tmp_path / "exp"
    # grad_accum=2 with 5 batches per rank and epoch: each epoch ends inside an
    # accumulation, whose gradients must still be averaged over ranks (checked at saving).
    out = _run(_torchrun(training_setup.overrides(exp, num_steps=8, log_interval=2,
                                                  grad_accum=2)))
    assert out.returncode == 0, out.stderr[-3000:]
    assert [p.name for p in find_checkpoints(exp)] == [
        "checkpoint-8.pt", "checkpoint-6.pt", "checkpoint-3.pt"
    ]
    assert (exp / "epoch-2.pt").is_file()  # 3 steps (5 batches) per epoch per rank
    ckpt = load_checkpoint(exp / "checkpoint-8.pt")
    assert ckpt["sampler"]["world_size"] == 2 and len(ckpt["rng"]) == 2
    rank0, rank1 = ckpt["last_cut_ids"]
    assert rank0 and rank1 and set(rank0).isdisjoint(rank1)
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])

    scalars = _scalars(exp / "tensorboard")
    for tag in ("train/loss", "train/lr", "train/grad_norm", "train/padding_ratio",
                "train/audio_seconds_per_second", "valid/loss"):
        assert tag in scalars, tag
    assert len(scalars["train/padding_ratio"]) == 4
    assert all(0.0 <= r < 1.0 for r in scalars["train/padding_ratio"])
    log = out.stderr + out.stdout
    assert "padding" in log and "eta" in log
    assert list((exp / "hydra").glob("*/.hydra/config.yaml"))  # Hydra's run dir under exp_dir
    assert (exp / "train_config.yaml").is_file()


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"training exited ({proc.returncode}) before writing {path}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.01)


@pytest.mark.slow  # three torchrun runs: ~30 s on an idle 2-core machine, 90 s when loaded
def test_resume_after_sigkill_matches_uninterrupted_run(training_setup, tmp_path):
    """2N steps in one run == N steps, SIGKILL, resume to 2N (weights and running average)."""
    n = 4  # an epoch is 5 steps per rank: step 4 is mid-epoch 1, step 8 in epoch 2
    common = dict(save_every_n=n, grad_accum=1, valid_interval=100)
    full, part = tmp_path / "full", tmp_path / "part"
    out = _run(_torchrun(training_setup.overrides(full, num_steps=2 * n, **common)))
    assert out.returncode == 0, out.stderr[-3000:]

    # Slow the interrupted run down (a step per ~0.5 s) so it is killed between N and 2N.
    killed = subprocess.Popen(
        _torchrun(training_setup.overrides(part, num_steps=2 * n, **common) + [
            "data.num_workers=1"
        ]),
        cwd=RECIPE, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for(part / f"checkpoint-{n}.pt", killed)
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
    assert not (part / f"checkpoint-{2 * n}.pt").exists(), "the run finished before the kill"

    resumed = _run(_torchrun(training_setup.overrides(
        part, num_steps=2 * n, start_batch=n, **common
    ) + ["data.num_workers=1"]))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = load_checkpoint(full / f"checkpoint-{2 * n}.pt")
    b = load_checkpoint(part / f"checkpoint-{2 * n}.pt")
    assert _max_diff(a["model"], b["model"]) <= 1e-6
    assert _max_diff(a["model_avg"], b["model_avg"]) <= 1e-6
    assert a["last_cut_ids"] == b["last_cut_ids"]


def _single(args: list[str]) -> subprocess.CompletedProcess:
    return _run([sys.executable, "train.py", *args], timeout=120)


def test_unknown_config_key_is_rejected_with_its_name(training_setup, tmp_path):
    out = _single(training_setup.overrides(tmp_path / "exp") + ["trainer.lr=0.1"])
    assert out.returncode != 0
    assert "trainer.lr" in out.stderr and "TrainerConfig" in out.stderr
    assert not list((tmp_path / "exp").glob("*.pt"))


def test_missing_manifest_is_named(training_setup, tmp_path):
    from auden.training.loop import train

    config = write_data_config(
        tmp_path / "train.yaml", [{"manifest": "data/fbank/none.jsonl.gz", "task": "transcribe"}]
    )
    cfg = training_setup.train_config(tmp_path / "exp")
    cfg.data.train_data_config = str(config)
    with pytest.raises(FileNotFoundError, match="manifest 'data/fbank/none.jsonl.gz' not found"):
        train(cfg)


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from auden.training import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(RECIPE / "configs"), version_base="1.3"):
        return compose("train", overrides=overrides)


@pytest.mark.parametrize(
    "key", ["model.encoder.confg=tiny", "data.sampler.max_durration=5", "trainer.optimizer.nam=x"]
)
def test_misspelt_nested_keys_are_rejected(training_setup, tmp_path, key):
    with pytest.raises(Exception, match=key.split("=")[0].rsplit(".", 1)[1]):
        _compose(training_setup.overrides(tmp_path / "exp") + [key])


def test_recipe_defaults_point_at_the_recipe_data_configs(training_setup):
    cfg = _compose([])
    assert cfg.data.train_data_config == "configs/train_data.yaml"
    assert cfg.data.valid_data_config == "configs/valid_data.yaml"
    assert cfg.model.model_type == "audio_llm" and cfg.model.llm.pretrained_model == "data/llm"
    ctc = _compose(["model=mini_ctc"])
    assert ctc.model.model_type == "zipformer_ctc" and ctc.model.tokenizer == "data/llm"


def test_a_bad_enum_value_lists_the_allowed_ones(training_setup, tmp_path):
    with pytest.raises(Exception) as err:
        _compose(training_setup.overrides(tmp_path / "exp") + ["trainer.optimizer.name=sgd"])
    message = f"{err.value} {err.value.__cause__}"
    assert "trainer.optimizer.name" in message and "adamw" in message and "scaled_adam" in message
