#!/usr/bin/env python3
"""Decode the dev split of every dataset of the mixture and score each task.

    python evaluate.py exp_dir=exp/zipformer_qwen2 checkpoint.model.iter=100000 checkpoint.model.avg=5
    python evaluate.py exp_dir=exp/whisper_qwen2 \
        checkpoint.model.epoch=10 checkpoint.model.avg=3 decoding_method=beam_search beam_size=4

Results go to <exp_dir>/<decoding_method>/{recogs,errs,wer-summary}-<test>-<suffix>.txt;
all keys: auden/decoding/config.py (EvalConfig).
"""

import hydra

from auden.decoding import evaluate, register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="configs", config_name="evaluate")
def main(cfg) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
