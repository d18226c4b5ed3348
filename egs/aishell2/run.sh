#!/usr/bin/env bash
# AISHELL-2 end to end: prepare the corpus, pretrain a Zipformer-M with CTC on its
# transcripts, train the audio LLM on that encoder and a pretrained LLM, and score it by CER
# on the iOS dev and test sets beside its cascade and text baselines.
#
#   bash egs/aishell2/run.sh --dl-dir /corpora --llm /models/Qwen2.5-7B-Instruct
#   bash egs/aishell2/run.sh --stage 3 --llm /models/Qwen2.5-7B-Instruct \
#     --encoder /models/zipformer-ctc                 # another pretrained encoder, no stage 1
#   bash egs/aishell2/run.sh --stage 4 --stop-stage 4 --llm ...   # one stage alone
#   bash egs/aishell2/run.sh --help                   # every option and its default
#
#   stage 0: prepare.sh (manifests, fbank, data configs incl. the transcribe-only ctc_*.yaml)
#   stage 1: CTC pretraining of the encoder on the LLM's tokens (configs/train_ctc.yaml),
#            its greedy CTC CER, export to exp/ctc/export
#   stage 2: the LLM (--llm as it is; --llm-steps N text-pretrains a copy first)
#   stage 3: the audio LLM (configs/train.yaml): encoder adapting (--encoder-train), joint CTC
#   stage 4: evaluate.py: the audio LLM, baseline=cascade (CTC words -> LLM), baseline=text
#   stage 5: export the averaged audio LLM to exp/audio_llm/export
# The stages are tools/audio_llm_stages.sh, shared with egs/librispeech/run.sh. RESULTS.md
# holds the commands and figures.
set -euo pipefail

help_message="Usage: run.sh [options]: AISHELL-2 -> CTC encoder -> audio LLM -> scores (see the script's header)"
dl_dir=                  # holds aishell2/AISHELL-2/iOS/... (prepare.sh --dl-dir)
nj=16                    # parallel jobs of the data preparation
perturb_speed=false      # add 0.9x and 1.1x speed copies of train

prepare() {
  (cd "$user_dir" && bash "$recipe_dir/prepare.sh" --dl-dir "$dl_dir" --nj "$nj" \
    --perturb-speed "$perturb_speed")
}

. "$(dirname "${BASH_SOURCE[0]}")/../../tools/audio_llm_stages.sh"
