"""``trainer.strategy=fsdp``: FSDP2 under real torchrun (two CPU ranks, gloo) trains the
same model as DDP, writes sharded checkpoint folders that resume exactly, survive a kill
mid-save, and export to the same model folder::

    torchrun --nproc_per_node=2 train.py exp_dir=exp/t trainer.strategy=fsdp
    auden export exp/t --iter 10 --avg 5 --out exp/t/export

The model: the micro Zipformer (trained, so its blocks are FSDP units) + projector + a
tiny Qwen2 with LoRA (its decoder layers are units, the adapters sharded with them).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file
from test_multinode import _kill, _launch
from test_train_torchrun import VENV_BIN, _env, _max_diff, _run, _scalars, _torchrun

from auden.atomic import TEMP_PREFIX
from auden.checkpoint import (
    CheckpointSpec,
    find_checkpoints,
    load_checkpoint,
    remove_temp_files,
    resolve_checkpoint,
    save_sharded_checkpoint,
)
from auden.checkpoint.sharded import shared_temp_path
from auden.training.config import TrainConfig, as_train_config

STEPS = 10
# grad_accum=2 with 5 batches per rank and epoch: epochs end inside an accumulation too.
COMMON = dict(num_steps=STEPS, grad_accum=2, save_every_n=1, average_period=1,
              valid_interval=5, log_interval=1)


def _args(setup, llm: Path, exp: Path, strategy: str, **kw) -> list[str]:
    return setup.overrides(exp, llm=llm, **{**COMMON, **kw}) + [f"trainer.strategy={strategy}"]


def _export(exp: Path, out: Path) -> dict:
    done = subprocess.run(
        [str(VENV_BIN / "auden"), "export", str(exp), "--iter", str(STEPS), "--avg", "5",
         "--out", str(out)], env=_env(), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return load_file(out / "model.safetensors")


@pytest.fixture(scope="module")
def runs(training_setup, tiny_llm_folder, tmp_path_factory) -> dict[str, Path]:
    """The same 10 steps under DDP and under FSDP."""
    root = tmp_path_factory.mktemp("fsdp")
    exps = {}
    for strategy in ("ddp", "fsdp"):
        exps[strategy] = root / strategy
        out = _run(_torchrun(_args(training_setup, tiny_llm_folder, exps[strategy], strategy)),
                   timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
    return exps


@pytest.mark.slow  # two 2-rank runs and two exports: 90 s at load 8 on 2 cores
def test_fsdp_and_ddp_train_to_the_same_losses_and_export_the_same_averaged_model(runs):
    ddp, fsdp = _scalars(runs["ddp"] / "tensorboard"), _scalars(runs["fsdp"] / "tensorboard")
    for tag in ("train/loss", "train/grad_norm", "valid/loss"):
        assert len(ddp[tag]) == len(fsdp[tag]) > 0, tag
        assert max(abs(a - b) for a, b in zip(ddp[tag], fsdp[tag])) <= 1e-5, tag
    assert len(ddp["train/loss"]) == STEPS

    # One folder per checkpoint, found and read like the .pt files of DDP.
    folders = find_checkpoints(runs["fsdp"])
    assert [p.name for p in folders[:2]] == [f"checkpoint-{STEPS}", f"checkpoint-{STEPS - 1}"]
    assert all(p.is_dir() for p in folders)
    a, b = load_checkpoint(runs["ddp"] / f"checkpoint-{STEPS}.pt"), load_checkpoint(folders[0])
    assert a["model"].keys() == b["model"].keys()
    assert any("lora_" in k for k in b["model"]) and any(k.startswith("audio_encoder.") for k in b["model"])
    assert _max_diff(a["model"], b["model"]) <= 1e-5
    assert _max_diff(a["model_avg"], b["model_avg"]) <= 1e-5

    exported = {s: _export(runs[s], runs[s] / "export") for s in runs}
    assert _max_diff(exported["ddp"], exported["fsdp"]) <= 1e-5


@pytest.mark.slow  # two 2-rank runs: 400 s at load 8 on 2 cores (start-ups, dataloader workers)
def test_fsdp_run_killed_mid_save_resumes_from_its_last_complete_folder_exactly(
    runs, training_setup, tiny_llm_folder, tmp_path
):
    part = tmp_path / "part"
    # num_workers=1 slows a step (~0.5 s), so the kill lands well before the end.
    args = _args(training_setup, tiny_llm_folder, part, "fsdp") + ["data.num_workers=1"]
    killed = _launch(["--standalone", "--nproc_per_node=2", "train.py", *args],
                     tmp_path / "killed.log")
    try:
        deadline = time.monotonic() + 240
        while not ((part / "checkpoint-3").is_dir() and _temp_folders(part)):
            assert killed.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no save began after checkpoint-3"
            time.sleep(0.001)
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        _kill(killed)
    assert _temp_folders(part), "the kill did not land inside a save"
    found = find_checkpoints(part)
    last = int(found[0].name.split("-")[1])
    assert last < STEPS, "the run finished before the kill"
    for folder in found:  # nothing half-written under a checkpoint's name
        assert load_checkpoint(folder)["batch_idx_train"] == int(folder.name.split("-")[1])

    resumed = _run(_torchrun(args + [f"trainer.start_batch={last}"]), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not _temp_folders(part), "the restart left the interrupted save's folder"
    a = load_checkpoint(runs["fsdp"] / f"checkpoint-{STEPS}")
    b = load_checkpoint(part / f"checkpoint-{STEPS}")
    assert _max_diff(a["model"], b["model"]) <= 1e-6
    assert _max_diff(a["model_avg"], b["model_avg"]) <= 1e-6
    assert a["last_cut_ids"] == b["last_cut_ids"]


def _temp_folders(exp: Path) -> list[Path]:
    return [p for p in exp.iterdir() if p.name.startswith(TEMP_PREFIX) and p.is_dir()]


def test_strategy_is_ddp_by_default_and_an_unknown_one_is_rejected():
    assert OmegaConf.structured(TrainConfig).trainer.strategy.value == "ddp"
    schema = OmegaConf.structured(TrainConfig)
    with pytest.raises(Exception, match="(?s)zero.*ddp.*fsdp"):
        OmegaConf.merge(schema, {"trainer": {"strategy": "zero"}})


def test_fsdp_refuses_scaled_adam_by_name(training_setup, tmp_path):
    cfg = training_setup.train_config(tmp_path / "exp", strategy="fsdp")
    cfg.trainer.optimizer.name = "scaled_adam"
    with pytest.raises(ValueError, match="trainer.strategy=fsdp.*adamw"):
        as_train_config(cfg)


def _as_folders(pt_dir: Path, out: Path) -> None:
    """Each ``.pt`` checkpoint of ``pt_dir`` as the sharded folder FSDP would write."""
    out.mkdir()
    for path in pt_dir.glob("*.pt"):
        ckpt = torch.load(path, weights_only=True)
        tensors = {k: ckpt.pop(k) for k in ("model", "model_avg") if ckpt.get(k) is not None}
        save_sharded_checkpoint(tensors, ckpt, out / path.stem)


def test_sharded_folders_are_resolved_and_averaged_as_their_pt_files(tmp_path):
    from test_average import _simulate_training

    pt, folders = tmp_path / "pt", tmp_path / "folders"
    pt.mkdir()
    _simulate_training(pt, steps=30, save_every=10, period=5)
    _as_folders(pt, folders)
    assert [p.name for p in find_checkpoints(folders)] == [
        "checkpoint-30", "checkpoint-20", "checkpoint-10"
    ]
    for spec in (CheckpointSpec(iter=30, avg=1), CheckpointSpec(iter=30, avg=2),
                 CheckpointSpec(iter=25, avg=2, use_averaged_model=False)):
        a = load_checkpoint(resolve_checkpoint(pt, spec))
        b = load_checkpoint(resolve_checkpoint(folders, spec))
        assert a["averaged_from"]["method"] == b["averaged_from"]["method"]
        assert torch.equal(a["model"]["w"], b["model"]["w"]), spec
    named = resolve_checkpoint(folders, CheckpointSpec(filename="checkpoint-20"))
    assert named == folders / "checkpoint-20"
    assert torch.equal(load_checkpoint(named)["model"]["w"],
                       load_checkpoint(pt / "checkpoint-20.pt")["model"]["w"])


def test_an_interrupted_save_is_never_found_and_is_cleared_at_the_next_start(tmp_path):
    save_sharded_checkpoint({"model": {"w": torch.ones(3)}}, {"batch_idx_train": 4},
                            tmp_path / "checkpoint-4")
    half = shared_temp_path(tmp_path / "checkpoint-8")  # what a kill mid-save leaves
    shutil.copytree(tmp_path / "checkpoint-4", half)
    (half / "meta.pt").unlink()
    assert [p.name for p in find_checkpoints(tmp_path)] == ["checkpoint-4"]
    assert remove_temp_files(tmp_path) == [half] and not half.exists()
