"""The model says which features it reads; training, evaluate.py and export follow it or
refuse a mismatch with an error that names both sides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tiny_audio_llm import tiny_config
from tiny_training import make_training_setup

from auden.auto.auto_model import AutoModel
from auden.checkpoint import CheckpointSpec, save_checkpoint, trainable_state_dict
from auden.decoding.config import CheckpointConfig, EvalConfig, EvalDataConfig
from auden.decoding.decode import evaluate
from auden.inference.export import export_model
from auden.models.audio_llm import AudioEncoderConfig
from auden.training.config import TrainConfig, to_plain_dict
from auden.training.distributed import DistInfo
from auden.training.trainer import Trainer

WHISPER_128 = {"d_model": 64, "encoder_layers": 2, "encoder_attention_heads": 4,
               "encoder_ffn_dim": 128, "num_mel_bins": 128}



def whisper_config(llm_folder: Path, bins: int):
    encoder = "tiny-test" if bins == 80 else WHISPER_128
    return tiny_config(
        llm_folder, audio_encoder=AudioEncoderConfig(model_type="whisper", config=encoder)
    )


MISMATCHES = [  # (whisper bins, data settings, the error)
    (80, {"feature": "fbank"}, "model reads whisper_fbank with 80 bins; data.feature is fbank"),
    (128, {"num_mel_bins": 80}, "model reads whisper_fbank with 128 bins; data.num_mel_bins is 80"),
]


def _train_config(setup, llm_folder, exp_dir, bins, data) -> TrainConfig:
    cfg = setup.train_config(exp_dir, num_steps=1)
    cfg.model = whisper_config(llm_folder, bins)
    for key, value in data.items():
        setattr(cfg.data, key, value)
    return cfg


@pytest.mark.parametrize("bins,data,error", MISMATCHES)
def test_training_refuses_features_the_model_does_not_read(
    tmp_path, tiny_corpus, llm_folder, bins, data, error
):
    setup = make_training_setup(tmp_path / "setup", tiny_corpus)
    cfg = _train_config(setup, llm_folder, tmp_path / "exp", bins, data)
    with pytest.raises(ValueError, match=error):
        Trainer(cfg, DistInfo())
    assert not list((tmp_path / "exp").glob("*.pt"))


def test_training_follows_the_model_when_data_leaves_features_unset(tmp_path, tiny_corpus):
    setup = make_training_setup(tmp_path / "setup", tiny_corpus)
    cfg = setup.train_config(tmp_path / "exp", num_steps=1)
    assert cfg.data.feature is None and cfg.data.num_mel_bins is None
    trainer = Trainer(cfg, DistInfo())
    assert trainer.cfg.data.feature == "fbank" and trainer.cfg.data.num_mel_bins == 80
    saved = yaml.safe_load((tmp_path / "exp" / "train_config.yaml").read_text())["data"]
    assert (saved["feature"], saved["num_mel_bins"], saved["pad_to_30s"]) == ("fbank", 80, False)


def _checkpoint(exp_dir: Path, model_config, data: dict) -> Path:
    """checkpoint-1.pt of a run of this model whose data config said ``data``."""
    model = AutoModel.from_config(model_config)
    config = {"model": to_plain_dict(TrainConfig(model=model_config))["model"], "data": data}
    return save_checkpoint(
        {"model": trainable_state_dict(model), "config": config, "batch_idx_train": 1},
        exp_dir / "checkpoint-1.pt",
    )


@pytest.mark.parametrize("bins,data,error", MISMATCHES)
def test_export_refuses_a_run_that_read_other_features(tmp_path, llm_folder, bins, data, error):
    path = _checkpoint(tmp_path / "exp", whisper_config(llm_folder, bins), data)
    with pytest.raises(ValueError, match=f"cannot export '{path}'.*{error}"):
        export_model(tmp_path / "exp", CheckpointSpec(filename=path.name), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bins,data,error", MISMATCHES)
def test_evaluate_refuses_features_the_model_does_not_read(
    tmp_path, tiny_corpus, llm_folder, bins, data, error
):
    path = _checkpoint(tmp_path / "exp", whisper_config(llm_folder, bins), {})
    test_config = tmp_path / "test_data.yaml"
    test_config.write_text(yaml.safe_dump([{"manifest": str(tiny_corpus.cuts), "task": "transcribe"}]))
    cfg = EvalConfig(
        exp_dir=str(tmp_path / "exp"),
        checkpoint=CheckpointConfig(model=CheckpointSpec(filename=path.name)),
        data=EvalDataConfig(test_data_config=str(test_config), num_workers=0, **data),
    )
    with pytest.raises(ValueError, match=error):
        evaluate(cfg)
