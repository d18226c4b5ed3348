#!/usr/bin/env bash
# The seeds' multi-task mixture for auden, from Hugging Face datasets already on disk:
# transcribe (LoquaciousSet), continue (SODA-Audio), describe (AudioSet strong),
# answer (HeySQuAD) and instruct (SIFT-style data), mixed by weight. Outputs under
# egs/multitask/data and configs/.
#
#   bash egs/multitask/prepare.sh --dl-dir /datasets --nj 16
#   bash egs/multitask/prepare.sh --datasets "loquacious soda_audio audioset_strong"  # the seeds' three
#
# Nothing is downloaded: fetch each dataset of configs/hf_sources.txt into $dl_dir/<name>
# first (a save_to_disk folder or its parquet files); that file also says which columns
# hold the audio and the target of each, and how each is weighted.
#
#  stage 1: tools/hf_to_lhotse.py -> data/manifests/<name>_{cuts,recordings,supervisions}_{train,dev}.jsonl.gz
#           (audio written once, as flac, under data/manifests/<name>_<split>/; resumable)
#  stage 2: only with --on-the-fly-feats false: features -> data/fbank/<name>_cuts_<split>.jsonl.gz
#           (data/whisper_fbank/ with --whisper-fbank true)
#  stage 3: data configs -> configs/{train,valid,test}_data.yaml (on-the-fly features; the
#           default) or configs/{train,valid,test}_data_<features>.yaml (precomputed), and
#           configs/train_data_seed3.yaml, the seeds' 0.4/0.3/0.3 transcribe/continue/describe mix
#  stage 4: only with --sift-llm DIR (a local chat LLM, e.g. Qwen2.5-3B-Instruct): SIFT
#           instruct targets (`auden sift`) for the datasets of configs/sift_sources.txt ->
#           <cuts dir>/<name>_sift_cuts_train.jsonl.gz, and configs/train_data_sift[_<features>].yaml,
#           the stage-3 mixture plus those sources. Resumable; see RESULTS.md for its cost.
#
# Each finished stage leaves a marker data/.stage-<n>[-<features>].done (tools/recipe_stages.sh):
# a re-run skips finished stages unless their settings changed; naming the range redoes it.
# Relative paths in the outputs are relative to this recipe folder.
set -euo pipefail

help_message="Usage: prepare.sh [options]: Hugging Face datasets -> Lhotse cuts and a multi-task data config (see the script's header)"
stage=1                  # first stage to run
stop_stage=4             # last stage to run
dl_dir=                  # holds one folder per dataset (default: egs/multitask/download)
sources=configs/hf_sources.txt  # the datasets, their columns, splits and weights
datasets=                # names of configs/hf_sources.txt to use (default: all of them)
nj=4                     # parallel jobs
sampling_rate=16000      # audio is resampled to this rate when converted
on_the_fly_feats=true    # false: precompute features in stage 2 (data.on_the_fly_feats=false)
whisper_fbank=false      # with precomputed features: Whisper log-mel instead of Kaldi fbank
num_mel_bins=80          # 80, or 128 for Whisper large-v3
sift_llm=                # stage 4: a chat LLM folder that writes SIFT targets (empty: no stage 4)
sift_sources=configs/sift_sources.txt  # stage 4: which datasets, modes, weights, metadata mappings
sift_batch_size=16       # stage 4: prompts per generate call

. "$(dirname "${BASH_SOURCE[0]}")/../../tools/parse_options.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../../tools/recipe_stages.sh"

[ $# -eq 0 ] || die "unexpected argument '$1' (options start with --; see --help)"
recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tools=$(cd "$recipe_dir/../../tools" && pwd)
dl_dir=$(realpath -m "${dl_dir:-$recipe_dir/download}")  # relative to where the user stands
case "$parse_options_given" in
  *" sources "*) sources=$(realpath -m "$sources") ;;  # relative to where the user stands
  *) sources=$recipe_dir/$sources ;;
esac
case "$parse_options_given" in
  *" sift_sources "*) sift_sources=$(realpath -m "$sift_sources") ;;
  *) sift_sources=$recipe_dir/$sift_sources ;;
esac
[ -z "$sift_llm" ] || sift_llm=$(realpath -m "$sift_llm")
cd "$recipe_dir"
use_repo_venv "$recipe_dir/../.."
stages_init data

[ -f "$sources" ] || die "the sources table $sources does not exist"
# The table without comments and blank lines, restricted to --datasets.
table=$(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$sources")
if [ -n "$datasets" ]; then
  known=$(echo "$table" | awk '{print $1}')
  for name in $datasets; do
    echo "$known" | grep -qx -- "$name" || die "--datasets: '$name' is not in $sources (it has: $(echo $known))"
  done
  table=$(echo "$table" | awk -v keep=" $datasets " 'index(keep, " " $1 " ")')
fi
names=$(echo "$table" | awk '{print $1}')

if [ "$on_the_fly_feats" = true ]; then
  feature=on_the_fly; cuts_dir=data/manifests; suffix=
else
  if [ "$whisper_fbank" = true ]; then feature=whisper_fbank; else feature=fbank; fi
  cuts_dir=data/$feature; suffix=_$feature
fi
# What each stage's output depends on, its predecessors' settings included.
settings_1="dl_dir=$dl_dir sources=$(md5sum < "$sources" | cut -c1-12) datasets=$(echo $names) sampling_rate=$sampling_rate"
settings_2="$settings_1 num_mel_bins=$num_mel_bins"
settings_3="$settings_2 cuts_dir=$cuts_dir"
settings_4="$settings_3 sift_llm=$sift_llm sift_sources=$(md5sum < "$sift_sources" 2> /dev/null | cut -c1-12)"

# output split names of a "train,validation:dev" splits field: "train dev"
out_splits() {
  echo "$1" | tr ',' '\n' | sed 's/.*://' | xargs
}

if run_stage 1 "convert $(echo $names) from $dl_dir" "" "$settings_1"; then
  # One process for all datasets; it checks every folder before converting any.
  python "$tools/hf_to_lhotse.py" --table "$sources" --dl-dir "$dl_dir" --datasets "$(echo $names)" \
    --sampling-rate "$sampling_rate" --num-jobs "$nj" data/manifests
  finish_stage 1 "" "$settings_1"
fi

if [ "$on_the_fly_feats" = true ]; then
  [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ] && log "Stage 2: none, the features are computed on the fly"
elif run_stage 2 "$num_mel_bins-bin $feature features -> $cuts_dir" "$feature" "$settings_2"; then
  extra=()
  [ "$whisper_fbank" = true ] && extra+=(--whisper-fbank)
  while read -r name repo task weight splits _; do
    compute_features "$name" "$cuts_dir" "$(out_splits "$splits")" "" \
      --num-mel-bins "$num_mel_bins" --num-jobs "$nj" "${extra[@]}"
  done <<< "$table"
  finish_stage 2 "$feature" "$settings_2"
fi

if run_stage 3 "data configs for $cuts_dir" "$feature" "$settings_3"; then
  train=configs/train_data$suffix.yaml
  valid=configs/valid_data$suffix.yaml
  test=configs/test_data$suffix.yaml
  seed3=configs/train_data_seed3$suffix.yaml
  : > "$valid.tmp"; : > "$test.tmp"
  echo "# Written by prepare.sh stage 3 from $sources: the multi-task mixture." > "$train.tmp"
  echo "# Written by prepare.sh stage 3: the seeds' mixture, transcribe/continue/describe 0.4/0.3/0.3." > "$seed3.tmp"
  seed3_tasks=""
  while read -r name repo task weight splits _; do
    # instruct draws its prompt from each cut's instruction; the other tasks from a file.
    prompt=""
    [ "$task" = instruct ] || prompt=", prompt_file: configs/prompts/$task.txt"
    [ "$task" = instruct ] || [ -s "configs/prompts/$task.txt" ] || die "configs/prompts/$task.txt is missing"
    echo "- {manifest: $cuts_dir/${name}_cuts_train.jsonl.gz, task: $task, weight: $weight$prompt}" >> "$train.tmp"
    case $task in
      transcribe) w=0.4 ;;
      continue|describe) w=0.3 ;;
      *) w="" ;;
    esac
    if [ -n "$w" ]; then
      echo "- {manifest: $cuts_dir/${name}_cuts_train.jsonl.gz, task: $task, weight: $w$prompt}" >> "$seed3.tmp"
      seed3_tasks="$seed3_tasks $task"
    fi
    for split in $(out_splits "$splits"); do
      [ "$split" = train ] && continue
      echo "- {manifest: $cuts_dir/${name}_cuts_$split.jsonl.gz, task: $task$prompt}" >> "$valid.tmp"
      echo "- {name: ${name}_$split, manifest: $cuts_dir/${name}_cuts_$split.jsonl.gz, task: $task$prompt}" >> "$test.tmp"
    done
  done <<< "$table"
  mv "$train.tmp" "$train"
  if [ "$(echo $seed3_tasks | tr ' ' '\n' | sort -u | xargs)" = "continue describe transcribe" ]; then
    mv "$seed3.tmp" "$seed3"
  else
    rm "$seed3.tmp"; log "not all of transcribe, continue and describe are in the mix: no $seed3"
  fi
  if [ -s "$valid.tmp" ]; then
    mv "$valid.tmp" "$valid"; mv "$test.tmp" "$test"
  else
    rm "$valid.tmp" "$test.tmp"; log "no dev split in the table: no $valid or $test"
  fi
  log "wrote $train ($(echo $names | wc -w) datasets)"
  finish_stage 3 "$feature" "$settings_3"
fi

if [ -z "$sift_llm" ]; then
  if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
    log "Stage 4: none, no --sift-llm given (a chat LLM folder to write SIFT targets with)"
  fi
elif run_stage 4 "SIFT instruct targets with $sift_llm" "$feature" "$settings_4"; then
  [ -f "$sift_sources" ] || die "the SIFT sources table $sift_sources does not exist"
  [ -f "configs/train_data$suffix.yaml" ] || die "configs/train_data$suffix.yaml is missing: run stage 3 first"
  out=configs/train_data_sift$suffix.yaml
  { echo "# Written by prepare.sh stage 4: the stage-3 mixture plus SIFT instruct sources ($sift_sources)."
    grep -v '^#' "configs/train_data$suffix.yaml"; } > "$out.tmp"
  added=0
  while read -r name modes weight mapping _; do
    echo " $(echo $names) " | grep -q " $name " || { log "SIFT: $name is not among the converted datasets: skipped"; continue; }
    extra=()
    [ "$mapping" = - ] || extra+=(--metadata-mapping "configs/sift/$mapping")
    python -m auden.cli sift "$cuts_dir/${name}_cuts_train.jsonl.gz" "$cuts_dir/${name}_sift_cuts_train.jsonl.gz" \
      --llm "$sift_llm" --modes "$modes" --weight "$weight" --batch-size "$sift_batch_size" "${extra[@]}"
    echo "- {manifest: $cuts_dir/${name}_sift_cuts_train.jsonl.gz, task: instruct, weight: $weight}" >> "$out.tmp"
    added=$((added + 1))
  done < <(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$sift_sources")
  [ "$added" -gt 0 ] || { rm "$out.tmp"; die "no dataset of $sift_sources was converted (--datasets $(echo $names))"; }
  mv "$out.tmp" "$out"
  log "wrote $out ($added SIFT sources)"
  finish_stage 4 "$feature" "$settings_4"
fi
