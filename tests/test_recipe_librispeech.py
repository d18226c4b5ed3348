"""egs/librispeech/prepare.sh on a tiny LibriSpeech tree in the real corpus layout."""

from __future__ import annotations

import json

import pytest
import torch
from lhotse import load_manifest
from recipe_fixtures import (
    LIBRISPEECH_TEXT,
    REPO,
    compose_recipe_config,
    copy_recipe,
    make_librispeech,
    run_prepare,
    run_script,
    tiny_run_args,
)
from tiny_audio_llm import make_tiny_llm
from tiny_training import MICRO_ZIPFORMER

from auden.data.config import load_data_config

PARTS = tuple(LIBRISPEECH_TEXT)  # train-clean-100 dev-clean test-clean


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("librispeech")
    texts = make_librispeech(root / "dl")
    recipe = copy_recipe("librispeech", root)
    proc = run_prepare(
        recipe, "--dl-dir", str(root / "dl"), "--nj", "1", "--parts", " ".join(PARTS)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return recipe, texts


def test_prepare_turns_the_corpus_into_cuts_with_fbank(prepared, monkeypatch):
    recipe, texts = prepared
    monkeypatch.chdir(recipe)
    for part in PARTS:
        cuts = load_manifest(f"data/fbank/librispeech_cuts_{part}.jsonl.gz")
        assert {c.id: c.supervisions[0].text for c in cuts} == texts[part]
        for cut in cuts:
            assert cut.load_features().shape == (cut.num_frames, 80)
            assert abs(cut.num_frames - round(cut.duration * 100)) <= 1
            assert cut.supervisions[0].speaker == cut.id.split("-")[0]


def test_stage_3_writes_english_prompts_and_data_configs_that_load(prepared, monkeypatch):
    recipe, _ = prepared
    monkeypatch.chdir(recipe)
    prompts = (recipe / "configs" / "prompts" / "transcribe.txt").read_text().splitlines()
    assert len(prompts) >= 5 and all(p.isascii() for p in prompts)
    train = load_data_config("configs/train_data.yaml")
    assert [(s.task, s.weight, s.manifest.name) for s in train] == [
        ("transcribe", 100.6, "librispeech_cuts_train-clean-100.jsonl.gz")
    ]
    assert [s.manifest.name for s in load_data_config("configs/valid_data.yaml")] == [
        "librispeech_cuts_dev-clean.jsonl.gz"
    ]
    test = load_data_config("configs/test_data.yaml")
    assert [s.name for s in test] == ["librispeech_dev-clean", "librispeech_test-clean"]
    # CTC pretraining (run.sh stage 1) reads transcribe-only copies.
    assert load_data_config("configs/ctc_train_data.yaml") == train
    assert load_data_config("configs/ctc_test_data.yaml") == test


def test_a_rerun_skips_finished_stages_and_stage_2_alone_is_redone(prepared):
    recipe, _ = prepared
    dl = recipe.parents[1] / "dl"
    manifests = sorted((recipe / "data" / "manifests").iterdir())
    feats = recipe / "data" / "fbank" / "librispeech_cuts_dev-clean.jsonl.gz"
    before = {p: p.stat().st_mtime_ns for p in manifests}
    feats_before = feats.stat().st_mtime_ns

    again = run_prepare(recipe, "--dl-dir", str(dl), "--parts", " ".join(PARTS))
    assert again.returncode == 0 and again.stdout.count("done already, skipping") == 3

    redo = run_prepare(
        recipe, "--dl-dir", str(dl), "--parts", " ".join(PARTS), "--stage", "2", "--stop-stage", "2"
    )
    assert redo.returncode == 0, redo.stderr[-2000:]
    assert "Stage 1" not in redo.stdout and "Stage 3" not in redo.stdout
    assert {p: p.stat().st_mtime_ns for p in manifests} == before
    assert feats.stat().st_mtime_ns > feats_before


def test_a_missing_part_fails_naming_the_expected_path(tmp_path):
    make_librispeech(tmp_path / "dl")
    recipe = copy_recipe("librispeech", tmp_path)
    proc = run_prepare(
        recipe, "--dl-dir", str(tmp_path / "dl"), "--parts", "train-clean-360 dev-clean"
    )
    assert proc.returncode != 0
    assert f"expected {tmp_path}/dl/LibriSpeech/train-clean-360/<speaker>/<chapter>/" in proc.stderr
    assert not (recipe / "data" / "manifests").exists()


def test_changing_the_parts_redoes_a_finished_stage(prepared):
    recipe, _ = prepared
    fewer = "train-clean-100 dev-clean"
    proc = run_prepare(recipe, "--dl-dir", str(recipe.parents[1] / "dl"), "--parts", fewer)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Stage 1: settings changed" in proc.stdout
    assert f"parts={fewer}" in (recipe / "data" / ".stage-1.done").read_text()
    assert "librispeech_test-clean" not in (recipe / "configs" / "test_data.yaml").read_text()


@pytest.mark.parametrize("recipe_name", ["librispeech", "aishell2", "multitask"])
def test_recipe_configs_compose_for_zipformer_and_whisper(recipe_name):
    recipe = REPO / "egs" / recipe_name
    llm = ["model.llm.pretrained_model=/models/Qwen2.5-7B-Instruct"]
    zipformer = compose_recipe_config(recipe, "train", llm)
    assert zipformer.model.audio_encoder.model_type == "zipformer"
    assert zipformer.model.projector.ds_rate == 4
    # what the features are is the model's to say: the data side does not repeat it
    assert zipformer.data.feature is None and zipformer.data.num_mel_bins is None
    whisper = compose_recipe_config(
        recipe, "train_whisper", llm + ["model.audio_encoder.pretrained_model=/models/whisper"]
    )
    assert whisper.model.audio_encoder.model_type == "whisper"
    assert whisper.model.projector.ds_rate == 8
    assert whisper.data.feature is None and whisper.data.pad_to_30s is None
    assert whisper.model.audio_encoder.pad_to_30s
    assert whisper.model.llm.lora.enabled and whisper.model.llm.frozen
    evaluate = compose_recipe_config(recipe, "evaluate")
    assert evaluate.data.test_data_config == "configs/test_data.yaml"
    if recipe_name != "multitask":  # its data configs hold cuts for on-the-fly features
        assert whisper.data.train_data_config == "configs/train_data_whisper.yaml"
        eval_whisper = compose_recipe_config(recipe, "evaluate_whisper")
        assert eval_whisper.data.test_data_config == "configs/test_data_whisper.yaml"
    else:
        assert zipformer.data.on_the_fly_feats and whisper.data.on_the_fly_feats


def test_stage_4_imports_an_icefall_encoder_and_makes_it_the_default(tmp_path):
    """`prepare.sh --icefall-checkpoint` (an icefall epoch checkpoint, params included)."""
    from safetensors.torch import load_file

    from auden.models.encoders.zipformer import ZipformerEncoder

    fixture = load_file(str(REPO / "tests/fixtures/icefall_zipformer/small.safetensors"))
    state = {k[len("weights.") :]: v for k, v in fixture.items() if k.startswith("weights.")}
    # icefall's epoch-N.pt keeps its training params beside the weights.
    params = {"feature_dim": 20, "pos_head_dim": "2", "num_heads": "2,2,4,4,2,2"}
    torch.save({"model": state, **params}, tmp_path / "epoch-30.pt")
    recipe = copy_recipe("librispeech", tmp_path)
    llm = ["model.llm.pretrained_model=/models/Qwen2.5-7B-Instruct"]
    before = compose_recipe_config(recipe, "train", llm).model.audio_encoder.pretrained_model
    assert before == ""
    args = ["--stage", "4", "--icefall-checkpoint", str(tmp_path / "epoch-30.pt")]
    proc = run_prepare(recipe, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    encoder = ZipformerEncoder.from_pretrained(recipe / "data" / "icefall_encoder").eval()
    features = fixture["clip0.features"][None]
    with torch.no_grad():
        frames = encoder(features, torch.tensor([features.shape[1]])).frames[0]
    assert (frames - fixture["clip0.encoder_out"]).abs().max().item() <= 1e-5
    train = compose_recipe_config(recipe, "train", llm)
    assert train.model.audio_encoder.pretrained_model == "data/icefall_encoder"
    given = compose_recipe_config(recipe, "train", llm + ["model.audio_encoder.pretrained_model=/e"])
    assert given.model.audio_encoder.pretrained_model == "/e"
    whisper = compose_recipe_config(recipe, "train_whisper", llm)
    assert whisper.model.audio_encoder.pretrained_model == ""


@pytest.mark.slow
def test_run_sh_walks_every_stage_on_the_fixture_corpus(tmp_path):
    """run.sh stages 0-5 at tiny sizes: prepare (with speaker genders), CTC pretraining with
    a gender head on a tokenizer without the audio token (like Qwen2.5's), the LLM as given,
    the audio LLM with joint CTC, its evaluation and cascade, both exports."""
    make_librispeech(tmp_path / "dl")
    recipe = copy_recipe("librispeech", tmp_path)
    texts = [t for part in LIBRISPEECH_TEXT.values() for t in part]
    llm = make_tiny_llm(tmp_path / "llm", with_audio_token=False, texts=texts)
    zipformer = tmp_path / "micro_zipformer.json"
    zipformer.write_text(json.dumps(MICRO_ZIPFORMER))
    args = tiny_run_args(llm, zipformer)
    ctc_args = args.index("--ctc-args") + 1
    args[ctc_args] += " model.labels=[{field:gender,classes:[male,female],weight:0.1}]"
    proc = run_script(
        recipe / "run.sh", "--dl-dir", "dl", "--nj", "1", "--parts", " ".join(PARTS),
        "--speaker-gender", "true", *args, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    exp = recipe / "exp"
    for stage in range(6):
        assert f"Stage {stage}: " in proc.stdout
    assert "Time per stage:" in proc.stdout
    cuts = load_manifest(recipe / "data/fbank/librispeech_cuts_train-clean-100.jsonl.gz")
    assert {c.supervisions[0].custom["gender"] for c in cuts} == {"female"}
    ctc = json.loads((exp / "ctc/export/config.json").read_text())
    assert ctc["model_type"] == "zipformer_ctc" and ctc["labels"][0]["field"] == "gender"
    for test_set in ("librispeech_dev-clean", "librispeech_test-clean"):
        # Stage 1: the encoder's own CTC WER and its gender accuracy.
        assert list((exp / "ctc/greedy_search").glob(f"wer-summary-{test_set}-iter-3-avg-2*"))
        assert list((exp / "ctc/greedy_search").glob(f"*-{test_set}_gender-iter-3-avg-2*"))
        # Stage 4: the audio LLM, its joint CTC head, and the cascade beside them.
        results = exp / "audio_llm/greedy_search"
        assert list(results.glob(f"wer-summary-{test_set}-iter-3-avg-2*.txt"))
        assert list(results.glob(f"wer-summary-{test_set}_ctc-iter-3-avg-2*.txt"))
        assert list(results.glob(f"wer-summary-{test_set}-*baseline-cascade*.txt"))
    assert "joint CTC starts from the encoder's pretrained CTC head" in proc.stdout + proc.stderr
    audio_llm = json.loads((exp / "audio_llm/export/config.json").read_text())
    assert audio_llm["model_type"] == "audio_llm" and audio_llm["ctc"]["weight"] == 0.3


def _fake_llm(folder):
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def test_run_sh_stage_3_refuses_to_train_a_zipformer_from_scratch(tmp_path):
    recipe = copy_recipe("librispeech", tmp_path)
    llm = _fake_llm(tmp_path / "llm")
    proc = run_script(
        recipe / "run.sh", "--stage", "3", "--stop-stage", "3", "--llm", str(llm), cwd=recipe
    )
    assert proc.returncode != 0
    assert "stage 3 needs a pretrained encoder, and 'exp/ctc/export' holds none" in proc.stderr
    assert "--encoder DIR" in proc.stderr
    assert not (recipe / "exp").exists()


def test_run_sh_needs_an_llm_from_stage_1_on(tmp_path):
    recipe = copy_recipe("librispeech", tmp_path)
    proc = run_script(recipe / "run.sh", "--stage", "1", cwd=recipe)
    assert proc.returncode != 0 and "--llm is needed from stage 1 on" in proc.stderr


def test_run_sh_help_lists_the_recipes_options_and_the_shared_ones(tmp_path):
    proc = run_script(REPO / "egs/librispeech/run.sh", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for option in ("--dl-dir", "--speaker-gender", "--llm ", "--encoder ", "--encoder-train",
                   "--ctc-weight", "--ctc-steps", "--stage "):
        assert option in proc.stdout, option
    assert proc.stdout.index("--dl-dir") < proc.stdout.index("--encoder-train")


def test_speaker_gender_comes_from_speakers_txt_into_the_supervisions(tmp_path):
    """prepare.sh --speaker-gender true: what a CTC label head on `gender` reads."""
    import importlib.util

    from lhotse import SupervisionSegment, SupervisionSet

    spec = importlib.util.spec_from_file_location(
        "speaker_gender", REPO / "egs/librispeech/local/speaker_gender.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    make_librispeech(tmp_path / "dl")
    speakers = tmp_path / "dl/LibriSpeech/SPEAKERS.TXT"
    manifest = tmp_path / "librispeech_supervisions_x.jsonl.gz"
    sups = [
        SupervisionSegment(f"{spk}-1-{i}", f"{spk}-1-{i}", 0.0, 1.0, speaker=str(spk), text="HI")
        for i, spk in enumerate((102, 105))
    ]
    SupervisionSet.from_segments(sups).to_file(manifest)
    assert module.add_gender(manifest, module.read_speakers(speakers), speakers) == 2
    assert [s.custom["gender"] for s in load_manifest(manifest)] == ["female", "male"]
    stranger = SupervisionSegment("9-1-0", "9-1-0", 0.0, 1.0, speaker="9", text="HI")
    SupervisionSet.from_segments([stranger]).to_file(manifest)
    with pytest.raises(KeyError, match="speaker '9', who is not in"):
        module.add_gender(manifest, module.read_speakers(speakers), speakers)
