#!/usr/bin/env bash
# LibriSpeech (960 h of English audiobooks) for auden: Lhotse manifests, features and data
# configs, under egs/librispeech/data.
#
#   bash egs/librispeech/prepare.sh --dl-dir /corpora --nj 16
#   bash egs/librispeech/prepare.sh --stage 2 --stop-stage 3 --whisper-fbank true  # Whisper features
#
# The corpus is not downloaded here: fetch it from https://www.openslr.org/12 and unpack it so
# that $dl_dir/LibriSpeech/<part>/<speaker>/<chapter>/ hold the .flac files and the
# <speaker>-<chapter>.trans.txt transcripts, for each part named in --parts.
#
#  stage 1: lhotse prepare librispeech -> data/manifests/librispeech_{recordings,supervisions}_<part>.jsonl.gz
#           (with --speaker-gender true, supervision.custom.gender from LibriSpeech/SPEAKERS.TXT)
#  stage 2: features -> data/fbank/librispeech_cuts_<part>.jsonl.gz (data/whisper_fbank/ with --whisper-fbank true)
#  stage 3: data configs -> configs/{train,valid,test}_data.yaml (configs/*_data_whisper.yaml with
#           --whisper-fbank true), using the English prompts of configs/prompts/transcribe.txt,
#           and their transcribe-only copies configs/ctc_*.yaml for CTC pretraining (run.sh)
#  stage 4: only with --icefall-checkpoint: import an icefall Zipformer (its exp/pretrained.pt)
#           -> data/icefall_encoder (+ data/icefall_ctc with --icefall-bpe-model), and write
#           configs/icefall_encoder/imported.yaml, which makes it train.yaml's default encoder
#
# Each finished stage leaves a marker data/.stage-<n>[-<features>].done (tools/recipe_stages.sh):
# a re-run skips finished stages unless their settings (--parts, ...) changed; naming the
# range (--stage 2 --stop-stage 2) redoes it. Relative paths in the outputs are relative to
# this recipe folder, where train.py and evaluate.py run.
set -euo pipefail

help_message="Usage: prepare.sh [options]: LibriSpeech -> manifests, features, data configs (see the script's header)"
stage=1                  # first stage to run
stop_stage=4             # last stage to run
dl_dir=                  # holds LibriSpeech/<part>/... (default: egs/librispeech/download)
parts="train-clean-100 train-clean-360 train-other-500 dev-clean dev-other test-clean test-other"  # parts to prepare
nj=4                     # parallel jobs
whisper_fbank=false      # Whisper log-mel (for Whisper encoders) instead of Kaldi fbank
num_mel_bins=80          # 80, or 128 for Whisper large-v3
perturb_speed=false      # add 0.9x and 1.1x speed copies of the train parts
use_kaldifeat=false      # compute fbank with kaldifeat (make setup-kaldifeat)
icefall_checkpoint=      # stage 4: an icefall Zipformer exp/pretrained.pt to start the encoder from
icefall_bpe_model=       # stage 4: its data/lang_bpe_500/bpe.model, to keep its CTC head too
speaker_gender=false     # stage 1 also writes each speaker's gender (LibriSpeech/SPEAKERS.TXT) into the supervisions

. "$(dirname "${BASH_SOURCE[0]}")/../../tools/parse_options.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../../tools/recipe_stages.sh"

[ $# -eq 0 ] || die "unexpected argument '$1' (options start with --; see --help)"
recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tools=$(cd "$recipe_dir/../../tools" && pwd)
dl_dir=$(realpath -m "${dl_dir:-$recipe_dir/download}")  # relative to where the user stands
[ -z "$icefall_checkpoint" ] || icefall_checkpoint=$(realpath -m "$icefall_checkpoint")
[ -z "$icefall_bpe_model" ] || icefall_bpe_model=$(realpath -m "$icefall_bpe_model")
cd "$recipe_dir"
use_repo_venv "$recipe_dir/../.."
stages_init data

corpus_dir=$dl_dir/LibriSpeech
train_parts=$(for p in $parts; do case $p in train-*) echo "$p" ;; esac; done)
dev_parts=$(for p in $parts; do case $p in dev-*) echo "$p" ;; esac; done)
test_parts=$(for p in $parts; do case $p in dev-*|test-*) echo "$p" ;; esac; done)
[ -n "$train_parts" ] || die "--parts '$parts' names no train-* part"

if [ "$whisper_fbank" = true ]; then feature=whisper_fbank; suffix=_whisper; else feature=fbank; suffix=; fi
feats_dir=data/$feature
# What each stage's output depends on, its predecessors' settings included.
settings_1="corpus=$corpus_dir parts=$(echo $parts) speaker_gender=$speaker_gender"
settings_2="$settings_1 num_mel_bins=$num_mel_bins perturb_speed=$perturb_speed use_kaldifeat=$use_kaldifeat"
settings_3="$settings_2"
settings_4="checkpoint=$icefall_checkpoint bpe_model=$icefall_bpe_model num_mel_bins=$num_mel_bins"

if run_stage 1 "manifests of $parts from $corpus_dir" "" "$settings_1"; then
  # Check the layout here: lhotse skips missing audio with a warning and writes nothing useful.
  for part in $parts; do
    part_dir=$corpus_dir/$part
    [ -n "$(find "$part_dir" -name '*.trans.txt' -print -quit 2>/dev/null)" ] \
      || die "LibriSpeech $part not found: expected $part_dir/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt" \
        "and .flac files beside it (unpack $part.tar.gz from https://www.openslr.org/12 under --dl-dir," \
        "or choose the parts with --parts)"
    [ -n "$(find "$part_dir" -name '*.flac' -print -quit)" ] \
      || die "LibriSpeech $part: no .flac files under $part_dir (expected $part_dir/<speaker>/<chapter>/<utt>.flac)"
  done
  command -v lhotse > /dev/null || die "the 'lhotse' command is not on PATH; activate the venv (source .venv/bin/activate)"
  part_args=()
  for part in $parts; do
    part_args+=(-p "$part")
    # lhotse reuses manifests it finds; a redo must read the corpus again.
    rm -f "data/manifests/librispeech_recordings_$part.jsonl.gz" "data/manifests/librispeech_supervisions_$part.jsonl.gz"
  done
  lhotse prepare librispeech -j "$nj" "${part_args[@]}" "$corpus_dir" data/manifests
  for part in $parts; do
    for kind in recordings supervisions; do
      [ -s "data/manifests/librispeech_${kind}_${part}.jsonl.gz" ] || die "lhotse wrote no data/manifests/librispeech_${kind}_${part}.jsonl.gz"
    done
  done
  if [ "$speaker_gender" = true ]; then
    # custom.gender on every supervision: what a CTC label head (configs/model/ctc_encoder.yaml) learns.
    [ -s "$corpus_dir/SPEAKERS.TXT" ] || die "--speaker-gender true needs $corpus_dir/SPEAKERS.TXT (it ships in every LibriSpeech tarball)"
    python local/speaker_gender.py --speakers "$corpus_dir/SPEAKERS.TXT" \
      $(for part in $parts; do echo "data/manifests/librispeech_supervisions_$part.jsonl.gz"; done)
  fi
  finish_stage 1 "" "$settings_1"
fi

if run_stage 2 "$num_mel_bins-bin $feature features -> $feats_dir" "$feature" "$settings_2"; then
  extra=()
  [ "$whisper_fbank" = true ] && extra+=(--whisper-fbank)
  if [ "$use_kaldifeat" = true ]; then
    python -c "import kaldifeat" 2> /dev/null || die "--use-kaldifeat true, but kaldifeat is not installed (make setup-kaldifeat)"
    extra+=(--kaldifeat)
  fi
  perturbed=""  # speed copies of the train parts only
  if [ "$perturb_speed" = true ]; then
    for part in $parts; do case $part in train-*) perturbed="$perturbed $part" ;; esac; done
  fi
  compute_features librispeech "$feats_dir" "$parts" "$perturbed" \
    --num-mel-bins "$num_mel_bins" --num-jobs "$nj" "${extra[@]}"
  finish_stage 2 "$feature" "$settings_2"
fi

if run_stage 3 "data configs for $feature features" "$feature" "$settings_3"; then
  prompt=configs/prompts/transcribe.txt
  [ -s "$prompt" ] || die "$prompt is missing (it ships with the recipe)"
  # The train parts are weighted by their size in hours, so the mix is the corpus itself.
  declare -A hours=([train-clean-100]=100.6 [train-clean-360]=363.6 [train-other-500]=496.7)
  {
    echo "# Written by prepare.sh stage 3: LibriSpeech train parts, transcribe task, $feature features."
    for part in $train_parts; do
      echo "- {manifest: $feats_dir/librispeech_cuts_$part.jsonl.gz, task: transcribe, weight: ${hours[$part]:-1.0}, prompt_file: $prompt}"
    done
  } > "configs/train_data$suffix.yaml"
  if [ -z "$test_parts" ]; then
    log "no dev-*/test-* part in --parts: no valid or test data config written"
  else
    for part in ${dev_parts:-$test_parts}; do
      echo "- {manifest: $feats_dir/librispeech_cuts_$part.jsonl.gz, task: transcribe, prompt_file: $prompt}"
    done > "configs/valid_data$suffix.yaml"
    for part in $test_parts; do
      echo "- {name: librispeech_$part, manifest: $feats_dir/librispeech_cuts_$part.jsonl.gz, task: transcribe, prompt_file: $prompt}"
    done > "configs/test_data$suffix.yaml"
  fi
  # run.sh stage 1 (CTC pretraining) reads the transcribe entries from copies of its own.
  written=("configs/train_data$suffix.yaml")
  [ -z "$test_parts" ] || written+=("configs/valid_data$suffix.yaml" "configs/test_data$suffix.yaml")
  python "$tools/ctc_data_configs.py" "${written[@]}"
  log "wrote configs/{,ctc_}{train,valid,test}_data$suffix.yaml"
  finish_stage 3 "$feature" "$settings_3"
fi

if [ -z "$icefall_checkpoint" ]; then
  if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
    log "stage 4: no --icefall-checkpoint: the encoder comes from model.audio_encoder.* (train.yaml)"
  fi
elif run_stage 4 "import icefall's encoder from $icefall_checkpoint" "" "$settings_4"; then
  [ -f "$icefall_checkpoint" ] || die "--icefall-checkpoint '$icefall_checkpoint' does not exist"
  ctc_args=() wrote=data/icefall_encoder
  if [ -n "$icefall_bpe_model" ]; then
    ctc_args=(--ctc-out data/icefall_ctc --bpe-model "$icefall_bpe_model")
    wrote="$wrote and data/icefall_ctc"
  fi
  auden import-icefall "$icefall_checkpoint" --out data/icefall_encoder \
    --num-mel-bins "$num_mel_bins" "${ctc_args[@]}"
  mkdir -p configs/icefall_encoder
  {
    echo "# @package _global_"
    echo "# Written by prepare.sh stage 4 from $icefall_checkpoint: the imported icefall encoder is"
    echo "# train.yaml's default; model.audio_encoder.pretrained_model=... on the command line wins."
    echo "model:"
    echo "  audio_encoder:"
    echo "    pretrained_model: data/icefall_encoder"
  } > configs/icefall_encoder/imported.yaml
  log "wrote $wrote, and configs/icefall_encoder/imported.yaml"
  finish_stage 4 "" "$settings_4"
fi
