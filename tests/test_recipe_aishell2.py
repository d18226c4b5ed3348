"""egs/aishell2/prepare.sh on a tiny AISHELL-2 tree in the real corpus layout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lhotse import load_manifest
from recipe_fixtures import copy_recipe, make_aishell2, run_prepare
from tiny_audio_llm import make_tiny_llm
from tiny_training import MICRO_ZIPFORMER

from auden.data.config import load_data_config

PARTS = ("train", "dev", "test")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The recipe run once end to end (stages 1-3) on the fake corpus."""
    root = tmp_path_factory.mktemp("aishell2")
    texts = make_aishell2(root / "dl")
    recipe = copy_recipe("aishell2", root)
    # From the repository root, as the README shows, with a --dl-dir relative to it.
    proc = run_prepare(recipe, "--dl-dir", "dl", "--nj", "1", cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return recipe, texts, proc


def test_prepare_turns_the_corpus_into_cuts_with_fbank(prepared, monkeypatch):
    recipe, texts, _ = prepared
    monkeypatch.chdir(recipe)  # feature paths are relative to the recipe folder, as in icefall
    data = recipe / "data"
    for part in PARTS:
        for kind in ("recordings", "supervisions"):
            assert (data / "manifests" / f"aishell2_{kind}_{part}.jsonl.gz").is_file()
        cuts = load_manifest(data / "fbank" / f"aishell2_cuts_{part}.jsonl.gz")
        assert {c.id: c.supervisions[0].text for c in cuts} == texts[part]
        for cut in cuts:
            feats = cut.load_features()
            assert feats.shape == (cut.num_frames, 80)
            assert abs(cut.num_frames - round(cut.duration * 100)) <= 1
            assert cut.supervisions[0].speaker == cut.id[1:6]  # the wav/<speaker>/ folder


def test_stage_3_writes_data_configs_with_chinese_prompts_that_load(prepared, monkeypatch):
    recipe, texts, _ = prepared
    monkeypatch.chdir(recipe)  # paths in the configs are relative to the recipe folder
    train = load_data_config("configs/train_data.yaml")
    assert [(s.task, s.manifest.name) for s in train] == [
        ("transcribe", "aishell2_cuts_train.jsonl.gz")
    ]
    test = load_data_config("configs/test_data.yaml")
    assert [s.name for s in test] == ["aishell2_dev", "aishell2_test"]
    assert {s.prompt_file for s in train + test} == {recipe / "configs/prompts/transcribe.txt"}
    # CTC pretraining (run.sh stage 1) reads transcribe-only copies.
    assert load_data_config("configs/ctc_train_data.yaml") == train
    assert load_data_config("configs/ctc_test_data.yaml") == test
    prompts = (recipe / "configs/prompts/transcribe.txt").read_text("utf-8").splitlines()
    assert len(prompts) >= 5 and all("\u4e00" <= p[0] <= "\u9fff" for p in prompts)


def test_a_rerun_skips_finished_stages_and_a_named_stage_is_redone(prepared, monkeypatch):
    recipe, _, _ = prepared
    monkeypatch.chdir(recipe)
    data = recipe / "data"
    outputs = sorted(p for p in data.rglob("*") if p.is_file() and not p.name.startswith("."))
    before = {p: p.stat().st_mtime_ns for p in outputs}

    again = run_prepare(recipe, "--dl-dir", str(recipe.parents[1] / "dl"))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("done already, skipping") == 3
    assert {p: p.stat().st_mtime_ns for p in outputs} == before

    # Whisper features with speed perturbation: only stage 2 (and 3) redone, fbank untouched.
    whisper = run_prepare(
        recipe,
        "--dl-dir",
        str(recipe.parents[1] / "dl"),
        "--stage",
        "2",
        "--stop-stage",
        "3",
        "--whisper-fbank",
        "true",
        "--perturb-speed",
        "true",
    )
    assert whisper.returncode == 0, whisper.stderr[-3000:]
    assert "Stage 1" not in whisper.stdout
    kept = [p for p in outputs if p.parent.name in ("manifests", "fbank")]
    assert {p: p.stat().st_mtime_ns for p in kept} == {p: before[p] for p in kept}
    train = load_manifest(data / "whisper_fbank" / "aishell2_cuts_train.jsonl.gz")
    assert len(train) == 3 * 6  # original, 0.9x and 1.1x
    assert {c.id for c in train if c.id.endswith("_sp0.9")}
    assert train[0].features.type == "whisper-fbank"
    assert train[0].load_features().shape == (train[0].num_frames, 80)
    whisper_train = load_data_config("configs/train_data_whisper.yaml")
    assert whisper_train[0].manifest == data / "whisper_fbank" / "aishell2_cuts_train.jsonl.gz"


def test_a_corpus_in_the_wrong_layout_fails_naming_the_expected_path(tmp_path):
    make_aishell2(tmp_path / "dl")
    # A common mistake: the iOS level is missing.
    ios = tmp_path / "dl" / "aishell2" / "AISHELL-2" / "iOS"
    shutil.move(str(ios / "data"), str(ios.parent / "data"))
    recipe = copy_recipe("aishell2", tmp_path)
    proc = run_prepare(recipe, "--dl-dir", str(tmp_path / "dl"))
    assert proc.returncode != 0
    expected = Path(tmp_path / "dl" / "aishell2" / "AISHELL-2" / "iOS" / "data" / "trans.txt")
    assert f"expected {expected}" in proc.stderr
    assert not (recipe / "data" / "manifests").exists()  # failed before lhotse ran


def test_an_unknown_option_is_rejected_by_name(tmp_path):
    recipe = copy_recipe("aishell2", tmp_path)
    proc = run_prepare(recipe, "--whisper", "true")
    assert proc.returncode != 0 and "unknown option '--whisper'" in proc.stderr


@pytest.mark.slow
def test_train_then_evaluate_scores_aishell2_by_cer(prepared, tmp_path):
    """The recipe's own train.py and evaluate.py on the fake corpus (a tiny model, 2 steps)."""
    recipe, _, _ = prepared
    llm = make_tiny_llm(tmp_path / "llm")
    zipformer = tmp_path / "micro_zipformer.json"
    zipformer.write_text(json.dumps(MICRO_ZIPFORMER))
    exp = tmp_path / "exp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    train = subprocess.run(
        [
            sys.executable,
            "train.py",
            f"exp_dir={exp}",
            f"model.llm.pretrained_model={llm}",
            "model.llm.dtype=float32",
            f"model.audio_encoder.config={zipformer}",
            "data.num_workers=0",
            "data.sampler.max_duration=4",
            "data.sampler.num_buckets=2",
            "trainer.num_steps=2",
            "trainer.dtype=float32",
            "trainer.save_every_n=1",
            "trainer.average_period=1",
            "trainer.valid_interval=100",
            "trainer.scheduler.warmup_batches=1",
        ],
        cwd=recipe,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert train.returncode == 0, train.stderr[-4000:]
    evaluate = subprocess.run(
        [
            sys.executable,
            "evaluate.py",
            f"exp_dir={exp}",
            "checkpoint.model.iter=2",
            "checkpoint.model.avg=1",
            "data.num_workers=0",
            "max_new_tokens=8",
        ],
        cwd=recipe,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert evaluate.returncode == 0, evaluate.stderr[-4000:]
    for test_set in ("aishell2_dev", "aishell2_test"):
        (summary,) = (exp / "greedy_search").glob(f"wer-summary-{test_set}-*.txt")
        assert "CER" in summary.read_text()
