#!/usr/bin/env bash
# AISHELL-2 (iOS channel, ~1000 h of Mandarin read speech) for auden: Lhotse manifests,
# features and data configs, under egs/aishell2/data.
#
#   bash egs/aishell2/prepare.sh --dl-dir /corpora --nj 16
#   bash egs/aishell2/prepare.sh --stage 2 --stop-stage 3 --whisper-fbank true  # Whisper features
#
# AISHELL-2 is licensed (https://www.aishelltech.com/aishell_2) and is not downloaded: place
# it so that $dl_dir/aishell2/AISHELL-2/iOS/{data,dev,test}/ each hold wav/ and trans.txt.
#
#  stage 1: lhotse prepare aishell2 -> data/manifests/aishell2_{recordings,supervisions}_{train,dev,test}.jsonl.gz
#  stage 2: features -> data/fbank/aishell2_cuts_{train,dev,test}.jsonl.gz (data/whisper_fbank/ with --whisper-fbank true)
#  stage 3: data configs -> configs/{train,valid,test}_data.yaml (configs/*_data_whisper.yaml with
#           --whisper-fbank true), using the Chinese prompts of configs/prompts/transcribe.txt
#           and their transcribe-only copies configs/ctc_*.yaml for CTC pretraining (run.sh)
#
# Each finished stage leaves a marker data/.stage-<n>[-<features>].done (tools/recipe_stages.sh):
# a re-run skips finished stages unless their settings changed; naming the range
# (--stage 2 --stop-stage 2) redoes it. Relative paths in the outputs are relative to
# this recipe folder, where train.py and evaluate.py run.
set -euo pipefail

help_message="Usage: prepare.sh [options]: AISHELL-2 -> manifests, features, data configs (see the script's header)"
stage=1                  # first stage to run
stop_stage=3             # last stage to run
dl_dir=                  # holds aishell2/AISHELL-2/iOS/... (default: egs/aishell2/download)
nj=4                     # parallel jobs
whisper_fbank=false      # Whisper log-mel (for Whisper encoders) instead of Kaldi fbank
num_mel_bins=80          # 80, or 128 for Whisper large-v3
perturb_speed=false      # add 0.9x and 1.1x speed copies of train
use_kaldifeat=false      # compute fbank with kaldifeat (make setup-kaldifeat)

. "$(dirname "${BASH_SOURCE[0]}")/../../tools/parse_options.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../../tools/recipe_stages.sh"

[ $# -eq 0 ] || die "unexpected argument '$1' (options start with --; see --help)"
recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tools=$(cd "$recipe_dir/../../tools" && pwd)
dl_dir=$(realpath -m "${dl_dir:-$recipe_dir/download}")  # relative to where the user stands
cd "$recipe_dir"
use_repo_venv "$recipe_dir/../.."
stages_init data

corpus_dir=$dl_dir/aishell2
parts="train dev test"
# lhotse's names for the corpus folders of each part
declare -A corpus_part=([train]=data [dev]=dev [test]=test)

if [ "$whisper_fbank" = true ]; then feature=whisper_fbank; suffix=_whisper; else feature=fbank; suffix=; fi
feats_dir=data/$feature
# What each stage's output depends on, its predecessors' settings included.
settings_1="corpus=$corpus_dir"
settings_2="$settings_1 num_mel_bins=$num_mel_bins perturb_speed=$perturb_speed use_kaldifeat=$use_kaldifeat"
settings_3="$settings_2"

if run_stage 1 "manifests from $corpus_dir" "" "$settings_1"; then
  # Check the layout here: lhotse would fail on the first missing file with a bare traceback.
  for part in $parts; do
    part_dir=$corpus_dir/AISHELL-2/iOS/${corpus_part[$part]}
    [ -f "$part_dir/trans.txt" ] || die "AISHELL-2 $part not found: expected $part_dir/trans.txt" \
      "and $part_dir/wav/ (the corpus is licensed: place it under --dl-dir, laid out as" \
      "$corpus_dir/AISHELL-2/iOS/{data,dev,test}/{wav/,trans.txt})"
    [ -n "$(find "$part_dir/wav" -name '*.wav' -print -quit 2>/dev/null)" ] \
      || die "AISHELL-2 $part: no .wav files under $part_dir/wav/ (expected $part_dir/wav/<speaker>/<utt>.wav)"
  done
  command -v lhotse > /dev/null || die "the 'lhotse' command is not on PATH; activate the venv (source .venv/bin/activate)"
  lhotse prepare aishell2 -j "$nj" "$corpus_dir" data/manifests
  for part in $parts; do
    for kind in recordings supervisions; do
      [ -s "data/manifests/aishell2_${kind}_${part}.jsonl.gz" ] || die "lhotse wrote no data/manifests/aishell2_${kind}_${part}.jsonl.gz"
    done
  done
  finish_stage 1 "" "$settings_1"
fi

if run_stage 2 "$num_mel_bins-bin $feature features -> $feats_dir" "$feature" "$settings_2"; then
  extra=()
  [ "$whisper_fbank" = true ] && extra+=(--whisper-fbank)
  if [ "$use_kaldifeat" = true ]; then
    python -c "import kaldifeat" 2> /dev/null || die "--use-kaldifeat true, but kaldifeat is not installed (make setup-kaldifeat)"
    extra+=(--kaldifeat)
  fi
  # One process per group of splits: those that get speed copies, and the others.
  perturbed=""
  if [ "$perturb_speed" = true ]; then perturbed=train; fi
  compute_features aishell2 "$feats_dir" "$parts" "$perturbed" \
    --num-mel-bins "$num_mel_bins" --num-jobs "$nj" "${extra[@]}"
  finish_stage 2 "$feature" "$settings_2"
fi

if run_stage 3 "data configs for $feature features" "$feature" "$settings_3"; then
  prompt=configs/prompts/transcribe.txt
  [ -s "$prompt" ] || die "$prompt is missing (it ships with the recipe)"
  cat > "configs/train_data$suffix.yaml" << EOF
# Written by prepare.sh stage 3: AISHELL-2 train, transcribe task, $feature features.
- {manifest: $feats_dir/aishell2_cuts_train.jsonl.gz, task: transcribe, weight: 1.0, prompt_file: $prompt}
EOF
  cat > "configs/valid_data$suffix.yaml" << EOF
- {manifest: $feats_dir/aishell2_cuts_dev.jsonl.gz, task: transcribe, prompt_file: $prompt}
EOF
  cat > "configs/test_data$suffix.yaml" << EOF
- {name: aishell2_dev, manifest: $feats_dir/aishell2_cuts_dev.jsonl.gz, task: transcribe, prompt_file: $prompt}
- {name: aishell2_test, manifest: $feats_dir/aishell2_cuts_test.jsonl.gz, task: transcribe, prompt_file: $prompt}
EOF
  # run.sh stage 1 (CTC pretraining) reads the transcribe entries from copies of its own.
  python "$tools/ctc_data_configs.py" configs/{train,valid,test}_data$suffix.yaml
  log "wrote configs/{,ctc_}{train,valid,test}_data$suffix.yaml"
  finish_stage 3 "$feature" "$settings_3"
fi
