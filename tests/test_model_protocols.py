"""What a model can do is stated by the Protocols of auden/types.py and checked with
isinstance: evaluate.py, export and the pipeline probe no attribute."""

from __future__ import annotations

import pytest
from tiny_audio_llm import make_tiny_llm, tiny_config

from auden.auto.auto_model import AutoModel
from auden.inference.pipeline import AudioTextToTextPipeline
from auden.models.ctc import CtcModel
from auden.models.heads import LabelHeadConfig
from auden.models.text_llm import TextLlm, TextLlmConfig
from auden.types import AudioChatModel, CtcTranscriber, LabelClassifier, SpeechModel

GENDER = LabelHeadConfig(field="gender", classes=["female", "male"])


def test_an_audio_llm_states_its_ctc_head_and_label_heads(tmp_path):
    llm = make_tiny_llm(tmp_path / "llm")
    plain = AutoModel.from_config(tiny_config(llm))
    assert isinstance(plain, AudioChatModel) and isinstance(plain, SpeechModel)
    assert isinstance(plain, CtcTranscriber) and not plain.has_ctc
    assert isinstance(plain, LabelClassifier) and plain.label_fields == []
    config = tiny_config(llm, labels=[GENDER])
    config.ctc.weight = 0.3
    full = AutoModel.from_config(config)
    assert full.has_ctc and full.label_fields == ["gender"]


def test_a_ctc_model_classifies_but_is_no_chat_model(training_setup):
    config = training_setup.model_config()
    config.labels = [GENDER]
    model = CtcModel.from_config(config)
    assert isinstance(model, SpeechModel) and isinstance(model, LabelClassifier)
    assert model.label_fields == ["gender"]
    assert not isinstance(model, AudioChatModel) and not isinstance(model, CtcTranscriber)
    with pytest.raises(ValueError, match="CtcModel is not an audio LLM"):
        AudioTextToTextPipeline(model)


def test_a_text_llm_trains_but_serves_no_audio(tmp_path):
    model = TextLlm.from_config(
        TextLlmConfig(pretrained_model=str(make_tiny_llm(tmp_path / "llm")))
    )
    assert isinstance(model, SpeechModel)
    assert not isinstance(model, (AudioChatModel, LabelClassifier, CtcTranscriber))
