#!/usr/bin/env python3
"""Train on mini_en: an audio LLM (default) or a CTC encoder to initialise one.

    torchrun --nproc_per_node=2 train.py exp_dir=exp/audio_llm trainer.num_steps=400
    torchrun --nproc_per_node=2 train.py model=mini_ctc exp_dir=exp/ctc trainer.num_steps=400
    torchrun --nproc_per_node=2 train.py exp_dir=exp/audio_llm trainer.start_batch=200  # resume

Defaults: configs/train.yaml; every key: auden/training/config.py (TrainConfig).
"""

import hydra

from auden.training import register_configs, train

register_configs()


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
