"""Helpers for training tests: a micro CTC model (real Zipformer, ~75k params) on the tiny corpus.

    setup = make_training_setup(tmp_path, tiny_corpus)
    cfg = setup.train_config(exp_dir, num_steps=6)          # typed TrainConfig, in-process
    args = setup.overrides(exp_dir, num_steps=6)            # the same as train.py overrides
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tinycorpus import WORDS, TinyCorpus

from auden.data.config import DataConfig
from auden.models.ctc import CtcEncoderConfig, CtcModelConfig
from auden.models.tiny_llm import train_chat_tokenizer
from auden.training.config import TrainConfig, TrainerConfig

MICRO_ZIPFORMER = {
    "downsampling_factors": [1, 2],
    "num_layers": [1, 1],
    "encoder_dims": [32, 32],
    "feedforward_dims": [64, 64],
    "num_heads": [2, 2],
    "cnn_kernel_sizes": [7, 7],
    "query_head_dim": 8,
    "value_head_dim": 8,
    "pos_head_dim": 4,
    "pos_dim": 8,
    "frontend_channels": [4, 8, 16],
}

# A step takes ~0.1 s on one CPU thread; an epoch of the tiny corpus is 10 steps on one
# rank, 5 on each of two.
TRAINER_DEFAULTS = dict(
    log_interval=1,
    valid_interval=4,
    save_every_n=3,
    average_period=1,
    keep_last_k=0,
)


@dataclass(frozen=True)
class TrainingSetup:
    corpus: TinyCorpus
    tokenizer: Path
    zipformer_config: Path

    def model_config(self) -> CtcModelConfig:
        return CtcModelConfig(
            encoder=CtcEncoderConfig(config=str(self.zipformer_config)),
            tokenizer=str(self.tokenizer),
        )

    def train_config(self, exp_dir: Path, **trainer) -> TrainConfig:
        data = DataConfig(
            train_data_config=str(self.corpus.train_data_config),
            valid_data_config=str(self.corpus.valid_data_config),
            num_workers=0,
        )
        data.sampler.max_duration = 10.0
        return TrainConfig(
            exp_dir=str(exp_dir),
            model=self.model_config(),
            data=data,
            trainer=TrainerConfig(**{**TRAINER_DEFAULTS, **trainer}),
        )

    def overrides(self, exp_dir: Path, llm: Path | None = None, **trainer) -> list[str]:
        """``train.py`` command-line overrides for the same set-up (model=zipformer_ctc),
        or, given a tiny ``llm`` folder, an audio LLM (the micro Zipformer, fully trained,
        + projector + LoRA on the LLM)."""
        model = [
            "model=zipformer_ctc",
            f"model.tokenizer={self.tokenizer}",
            f"model.encoder.config={self.zipformer_config}",
        ] if llm is None else [
            "model=audio_llm",
            "model.audio_encoder.model_type=zipformer",
            f"model.audio_encoder.config={self.zipformer_config}",
            f"model.llm.pretrained_model={llm}",
            "model.llm.lora.enabled=true",
        ]
        args = model + [
            f"exp_dir={exp_dir}",
            f"data.train_data_config={self.corpus.train_data_config}",
            f"data.valid_data_config={self.corpus.valid_data_config}",
            "data.sampler.max_duration=10",
            "data.num_workers=0",
        ]
        return args + [f"trainer.{k}={v}" for k, v in {**TRAINER_DEFAULTS, **trainer}.items()]


def make_training_setup(folder: Path, corpus: TinyCorpus) -> TrainingSetup:
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_chat_tokenizer([" ".join(WORDS)] * 2 + ["a tone of 0123456789 hertz"],
                                     vocab_size=300)
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    zipformer_config = folder / "micro_zipformer.json"
    zipformer_config.write_text(json.dumps(MICRO_ZIPFORMER))
    return TrainingSetup(corpus, folder / "tokenizer", zipformer_config)
