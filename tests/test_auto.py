import pytest
import torch
from tiny_audio_llm import make_tiny_llm, tiny_config

from auden.auto.auto_config import AutoConfig
from auden.auto.auto_model import MODEL_CLASSES, AutoModel
from auden.models.audio_llm import AudioLlm, AudioLlmConfig


def test_registry_maps_model_types_to_classes_lazily():
    assert MODEL_CLASSES["audio_llm"] == "auden.models.audio_llm:AudioLlm"
    assert MODEL_CLASSES["zipformer_ctc"] == "auden.models.ctc:CtcModel"
    cfg = AutoConfig.for_model("audio_llm", audio_token="<|AUDIO|>")
    assert isinstance(cfg, AudioLlmConfig) and cfg.projector.ds_rate == 4


def test_unknown_model_type_and_missing_model_type_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown model_type 'whisper_llm'"):
        AutoConfig.for_model("whisper_llm")
    with pytest.raises(ValueError, match="no 'model_type'"):
        AutoModel.from_config({"projector": {}})
    with pytest.raises(FileNotFoundError, match="no config.json"):
        AutoModel.from_pretrained(tmp_path)


def test_config_round_trips_through_an_exported_folder(tmp_path):
    torch.manual_seed(0)
    config = tiny_config(make_tiny_llm(tmp_path / "llm"))
    config.audio_encoder.pad_to_30s = True
    model = AutoModel.from_config(config)
    assert model.audio_encoder.pad_to_30s
    model.save_pretrained(tmp_path / "export")
    loaded_cfg = AutoConfig.from_pretrained(tmp_path / "export")
    assert loaded_cfg.audio_encoder.config["pad_to_30s"] is True
    assert loaded_cfg.llm.config["hidden_size"] == 64
    loaded = AutoModel.from_pretrained(tmp_path / "export")
    assert isinstance(loaded, AudioLlm) and loaded.audio_encoder.pad_to_30s
