#!/usr/bin/env python3
"""Decode the mini_en test sets and score every task.

    python evaluate.py exp_dir=exp/audio_llm checkpoint.model.iter=400 checkpoint.model.avg=2
    python evaluate.py exp_dir=exp/audio_llm checkpoint.model.epoch=3 checkpoint.model.avg=2 \
        decoding_method=beam_search beam_size=4

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
