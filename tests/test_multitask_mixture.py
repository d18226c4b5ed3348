"""egs/multitask: Hugging Face datasets on disk -> one weighted multi-task data config -> training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from hf_dataset_fixtures import SOURCES, expected_target, make_hf_dataset
from lhotse import load_manifest
from recipe_fixtures import copy_recipe, run_prepare
from tiny_audio_llm import make_tiny_llm
from tiny_training import MICRO_ZIPFORMER

from auden.data.config import DataConfig, load_data_config
from auden.data.loader import TrainData
from auden.data.tasks import get_task

N_TRAIN, N_DEV = 6, 2


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Five tiny datasets shaped like the real ones, converted by prepare.sh (stages 1-3)."""
    root = tmp_path_factory.mktemp("multitask")
    for source in SOURCES:
        make_hf_dataset(root / "dl", source, n_train=N_TRAIN, n_valid=N_DEV)
    recipe = copy_recipe("multitask", root)
    proc = run_prepare(recipe, "--dl-dir", str(root / "dl"), "--nj", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return recipe, proc


def test_every_dataset_is_converted_with_its_target_where_its_task_reads_it(prepared, monkeypatch):
    recipe, _ = prepared
    monkeypatch.chdir(recipe)
    for source in SOURCES:
        task = get_task(source.task)
        for split, n, offset in (("train", N_TRAIN, 0), ("dev", N_DEV, N_TRAIN)):
            cuts = load_manifest(f"data/manifests/{source.name}_cuts_{split}.jsonl.gz")
            assert [task.target(c) for c in cuts] == [
                expected_target(source, offset + k) for k in range(n)
            ]
            assert all(c.load_audio().shape == (1, c.num_samples) for c in cuts)
    sift = load_manifest("data/manifests/sift_cuts_train.jsonl.gz")
    assert get_task("instruct").instruction(sift[0]) == "count the beeps in clip 0"


def test_the_data_configs_name_every_task_with_its_weight_and_prompts(prepared, monkeypatch):
    recipe, _ = prepared
    monkeypatch.chdir(recipe)
    train = load_data_config("configs/train_data.yaml")
    assert [(s.task, s.weight) for s in train] == [
        ("transcribe", 0.28),
        ("continue", 0.21),
        ("describe", 0.21),
        ("answer", 0.15),
        ("instruct", 0.15),
    ]
    assert [s.prompt_file.name if s.prompt_file else None for s in train] == [
        "transcribe.txt",
        "continue.txt",
        "describe.txt",
        "answer.txt",
        None,
    ]
    seed3 = load_data_config("configs/train_data_seed3.yaml")
    assert [(s.task, s.weight) for s in seed3] == [
        ("transcribe", 0.4),
        ("continue", 0.3),
        ("describe", 0.3),
    ]
    test = load_data_config("configs/test_data.yaml")
    assert [s.name for s in test] == [f"{s.name}_dev" for s in SOURCES]


@pytest.mark.parametrize("config", ["train_data.yaml", "train_data_seed3.yaml"])
def test_over_1000_sampled_cuts_each_task_share_is_within_5_points_of_its_weight(
    prepared, monkeypatch, config
):
    recipe, _ = prepared
    # Sources of 6 cuts each: the mixture repeats every source forever and draws by weight,
    # so the batches of the training sampler follow the weights however small a source is.
    monkeypatch.chdir(recipe)
    sources = load_data_config(f"configs/{config}")
    total = sum(s.weight for s in sources)
    cfg = DataConfig(
        train_data_config=f"configs/{config}",
        on_the_fly_feats=True,
        num_workers=0,
        cuts_per_epoch=5000,
    )
    for seed in (0, 1, 2):
        data = TrainData(cfg, seed=seed)
        data.loader(epoch=1)  # sets the epoch of the mixture and of the sampler
        counts = Counter()
        for batch in data.sampler:  # the training sampler's batches of cuts (no audio read)
            counts.update(c.custom["task"] for c in batch)
            if sum(counts.values()) >= 1000:
                break
        n = sum(counts.values())
        assert n >= 1000
        for s in sources:
            share = counts[s.task] / n
            assert abs(share - s.weight / total) <= 0.05, (seed, s.task, share, s.weight / total)


def test_the_multitask_config_trains_a_few_steps_with_the_recipe_train_py(prepared, tmp_path):
    recipe, _ = prepared
    llm = make_tiny_llm(tmp_path / "llm")
    zipformer = tmp_path / "micro_zipformer.json"
    zipformer.write_text(json.dumps(MICRO_ZIPFORMER))
    exp = tmp_path / "exp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            f"exp_dir={exp}",
            f"model.llm.pretrained_model={llm}",
            "model.llm.dtype=float32",
            "model.llm.lora.r=4",
            "model.llm.lora.alpha=8",
            f"model.audio_encoder.config={zipformer}",
            "data.num_workers=0",
            "data.sampler.max_duration=4",
            "data.sampler.num_buckets=2",
            "trainer.num_steps=3",
            "trainer.dtype=float32",
            "trainer.save_every_n=3",
            "trainer.valid_interval=3",
            "trainer.log_interval=1",
            "trainer.scheduler.warmup_batches=1",
        ],
        cwd=recipe,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (exp / "checkpoint-3.pt").is_file()
    import torch

    checkpoint = torch.load(exp / "checkpoint-3.pt", weights_only=True)
    assert checkpoint["batch_idx_train"] == 3
    assert checkpoint["config"]["data"]["on_the_fly_feats"] is True
    assert checkpoint["config"]["data"]["train_data_config"] == "configs/train_data.yaml"
    assert any("lora" in k for k in checkpoint["model"])
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values())


def test_precomputed_features_are_an_option(prepared, monkeypatch):
    recipe, _ = prepared
    proc = run_prepare(
        recipe,
        "--dl-dir",
        str(recipe.parents[1] / "dl"),
        "--datasets",
        "soda_audio sift",
        "--on-the-fly-feats",
        "false",
        "--stage",
        "2",
        "--stop-stage",
        "3",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    monkeypatch.chdir(recipe)
    sources = load_data_config("configs/train_data_fbank.yaml")
    assert [(s.task, s.manifest.parent.name) for s in sources] == [
        ("continue", "fbank"),
        ("instruct", "fbank"),
    ]
    for source in sources:
        cut = next(iter(load_manifest(source.manifest)))
        assert cut.load_features().shape == (cut.num_frames, 80)
        assert get_task(source.task).target(cut)  # the target survived feature extraction


def test_stage_4_adds_sift_instruct_targets_to_the_mixture(prepared, tmp_path, monkeypatch):
    from sift_fixtures import make_bigram_llm

    recipe, first = prepared
    assert "Stage 4: none, no --sift-llm given" in first.stdout
    llm = make_bigram_llm(tmp_path / "sift_llm", ["how lovely to hear"])
    proc = run_prepare(
        recipe, "--dl-dir", str(recipe.parents[1] / "dl"), "--nj", "1",
        "--stage", "4", "--stop-stage", "4", "--sift-llm", str(llm),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    monkeypatch.chdir(recipe)
    sources = load_data_config("configs/train_data_sift.yaml")
    assert [(s.task, s.weight) for s in sources] == [
        *[(s.task, s.weight) for s in load_data_config("configs/train_data.yaml")],
        ("instruct", 0.1),
    ]
    cuts = load_manifest(sources[-1].manifest)
    assert len(cuts) == N_TRAIN  # sift_s on every loquacious train cut
    task = get_task("instruct")
    for cut in cuts:
        assert cut.id.endswith("-sift_s")
        assert task.target(cut) == "how lovely to hear" and task.instruction(cut) == ""
