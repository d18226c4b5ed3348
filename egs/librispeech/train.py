#!/usr/bin/env python3
"""Train an audio LLM on LibriSpeech (after `bash prepare.sh`).

    torchrun --nproc_per_node=8 train.py exp_dir=exp/zipformer_qwen2 \
        model.llm.pretrained_model=/abs/path/Qwen2.5-7B-Instruct
    torchrun --nproc_per_node=8 train.py --config-name train_whisper exp_dir=exp/whisper_qwen2 \
        model.audio_encoder.pretrained_model=/abs/path/whisper-large-v2 \
        model.llm.pretrained_model=/abs/path/Qwen2.5-7B-Instruct

Defaults: configs/train.yaml; every key: auden/training/config.py (TrainConfig).
"""

from pathlib import Path

import hydra

from auden.training import register_configs, train

register_configs(shared=Path(__file__).resolve().parents[1] / "shared" / "configs")


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
