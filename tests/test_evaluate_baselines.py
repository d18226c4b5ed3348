"""evaluate.py answers "does the audio LLM beat its own parts?": the joint-CTC WER and the
label accuracies beside the model's scores, and the cascade and text-ceiling baselines."""

from __future__ import annotations

import pytest
import torch
from tiny_training import make_training_setup
from tinycorpus import write_data_config

from auden.checkpoint import CheckpointSpec
from auden.decoding.config import CheckpointConfig, EvalConfig, EvalDataConfig
from auden.decoding.decode import evaluate
from auden.models.audio_llm import AudioEncoderConfig, AudioLlmConfig, JointCtcConfig, LlmConfig
from auden.models.heads import LabelHeadConfig
from auden.training import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_corpus):
    from tiny_audio_llm import make_tiny_llm
    from tinycorpus import WORDS

    root = tmp_path_factory.mktemp("baselines")
    texts = [" ".join(WORDS), "a tone of 0123456789 hertz", "Transcribe the audio."]
    llm = make_tiny_llm(root / "llm", texts=texts)
    test_config = write_data_config(
        root / "test_data.yaml",
        [
            {"name": "tiny_transcribe", "manifest": str(tiny_corpus.cuts), "task": "transcribe"},
            {"name": "tiny_answer", "manifest": str(tiny_corpus.cuts), "task": "answer"},
        ],
    )
    return make_training_setup(root / "setup", tiny_corpus), llm, test_config, root


def _train_audio_llm(setup, name: str, **model):
    training_setup, llm, _, root = setup
    exp_dir = root / name
    cfg = training_setup.train_config(exp_dir, num_steps=4, save_every_n=2)
    cfg.model = AudioLlmConfig(
        audio_encoder=AudioEncoderConfig(
            model_type="zipformer", config=str(training_setup.zipformer_config)
        ),
        llm=LlmConfig(pretrained_model=str(llm)),
        **model,
    )
    torch.manual_seed(0)
    train(cfg)
    return exp_dir


def _eval(exp_dir, test_config, **kw) -> dict:
    cfg = EvalConfig(
        exp_dir=str(exp_dir),
        checkpoint=CheckpointConfig(model=CheckpointSpec(iter=4, avg=1)),
        data=EvalDataConfig(test_data_config=str(test_config), num_workers=0),
        max_new_tokens=8,
        device="cpu",
        **kw,
    )
    return {t.scores.test_set: t for t in evaluate(cfg).test_sets}


def test_audio_llm_reports_its_ctc_wer_and_both_baselines(setup):
    _, _, test_config, root = setup
    exp_dir = _train_audio_llm(setup, "audio_llm", ctc=JointCtcConfig(weight=0.3))

    results = _eval(exp_dir, test_config)
    assert set(results) == {"tiny_transcribe", "tiny_transcribe_ctc", "tiny_answer"}
    ctc = results["tiny_transcribe_ctc"]
    assert ctc.scores.task == "transcribe" and ctc.scores.errors is not None
    assert ctc.files["recogs"].name.startswith("recogs-tiny_transcribe_ctc-")

    cascade = _eval(exp_dir, test_config, baseline="cascade")
    assert set(cascade) == {"tiny_transcribe", "tiny_answer"}
    # On transcribe, a cascade's transcript is its ASR's: the CTC words.
    assert [u.hyp for u in cascade["tiny_transcribe"].utterances] == [
        u.hyp for u in results["tiny_transcribe_ctc"].utterances
    ]
    assert "baseline-cascade" in cascade["tiny_answer"].files["recogs"].name

    ceiling = _eval(exp_dir, test_config, baseline="text")
    assert set(ceiling) == {"tiny_answer"}  # nothing to score on transcribe from the words


def test_cascade_without_ctc_words_is_an_error_that_says_what_to_give(setup):
    _, _, test_config, _ = setup
    exp_dir = _train_audio_llm(setup, "no_ctc")
    with pytest.raises(ValueError, match="baseline_ctc_model"):
        _eval(exp_dir, test_config, baseline="cascade")


def test_ctc_encoder_with_a_label_head_reports_its_accuracy(setup):
    training_setup, _, test_config, root = setup
    exp_dir = root / "ctc_labels"
    cfg = training_setup.train_config(exp_dir, num_steps=4, save_every_n=2)
    cfg.model.labels = [LabelHeadConfig("pitch", ["low", "high"], weight=0.5)]
    torch.manual_seed(0)
    train(cfg)
    transcribe_only = write_data_config(
        root / "ctc_test.yaml",
        [{"name": "tiny", "manifest": str(setup[0].corpus.cuts), "task": "transcribe"}],
    )
    results = _eval(exp_dir, transcribe_only)
    assert set(results) == {"tiny", "tiny_pitch"}
    pitch = results["tiny_pitch"]
    assert pitch.scores.exact_match is not None
    assert pitch.scores.num_utts == 23  # the corpus's first cut has no pitch label
    assert {u.ref for u in pitch.utterances} == {"low", "high"}
