"""egs/aishell2/prepare.sh on a tiny AISHELL-2 tree in the real corpus layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from lhotse import load_manifest
from recipe_fixtures import (
    AISHELL2_TEXT,
    copy_recipe,
    make_aishell2,
    run_prepare,
    run_script,
    tiny_run_args,
)
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
def test_run_sh_walks_every_stage_and_scores_aishell2_by_cer(tmp_path):
    """run.sh stages 0-5 at tiny sizes, from the repository root with a relative --dl-dir:
    CTC pretraining on the LLM's tokens, 2 text-pretraining steps of the LLM, the audio LLM with joint CTC on
    the stage-1 encoder, CER of the audio LLM, its CTC head and the cascade, both exports."""
    make_aishell2(tmp_path / "dl")
    recipe = copy_recipe("aishell2", tmp_path)
    texts = [t for part in AISHELL2_TEXT.values() for t in part]
    llm = make_tiny_llm(tmp_path / "llm", texts=texts)
    zipformer = tmp_path / "micro_zipformer.json"
    zipformer.write_text(json.dumps(MICRO_ZIPFORMER))
    proc = run_script(
        recipe / "run.sh", "--dl-dir", "dl", "--nj", "1", "--llm-steps", "2",
        *tiny_run_args(llm, zipformer),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert (recipe / "exp/llm/export/config.json").is_file()  # stage 2 text-pretrained it
    assert "no text baseline: configs/test_data.yaml holds transcribe test sets only" in proc.stdout
    exp = recipe / "exp"
    for test_set in ("aishell2_dev", "aishell2_test"):
        (ctc,) = (exp / "ctc/greedy_search").glob(f"wer-summary-{test_set}-iter-3-avg-2*.txt")
        assert "CER" in ctc.read_text()
        results = exp / "audio_llm/greedy_search"
        for name in (test_set, f"{test_set}_ctc"):
            (summary,) = [
                f for f in results.glob(f"wer-summary-{name}-iter-3-avg-2*.txt")
                if "baseline" not in f.name
            ]
            assert "CER" in summary.read_text()
        assert list(results.glob(f"wer-summary-{test_set}-*baseline-cascade*.txt"))
    for export in ("ctc/export", "audio_llm/export"):
        assert (exp / export / "config.json").is_file()
