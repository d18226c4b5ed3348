#!/usr/bin/env bash
# mini_en: an offline spoken-English corpus for every task auden trains, made on the spot
# with espeak-ng and sox, then prepared like any real corpus.
#
#   stage 0: synthesise 16 kHz wav files (many voices, speeds, pitches; sound events)
#   stage 1: Lhotse manifests  data/manifests/mini_en_{recordings,supervisions}_<split>.jsonl.gz
#   stage 2: 80-bin fbank      data/fbank/mini_en_cuts_<split>.jsonl.gz (+ _<task> subsets)
#   stage 3: the recipe's LLM  data/llm (tokenizer with chat template and <|AUDIO|>, tiny Qwen2)
#   stage 4: data configs      configs/{train,valid,test}_data.yaml
# Splits: train, dev, test-seen (training voices), test-unseen (voices never in training).
#
# Each finished stage leaves a marker data/.stage-<n>.done, written last
# (tools/recipe_stages.sh). A re-run skips finished stages unless their settings
# (--num-utts, ...) changed; naming the range redoes it even when it is done:
#   bash prepare.sh                               # everything not yet done
#   bash prepare.sh --stage 2 --stop-stage 2      # recompute the features only
# Relative paths are relative to this recipe folder.
set -euo pipefail

stage=0               # first stage to run
stop_stage=4          # last stage to run
nj=2                  # parallel jobs (synthesis, features)
num_utts=8000         # utterances over all splits; dev and each test set get 5%
seed=42               # seed of the corpus plan (texts, voices, speeds, pitches)
speed_perturb=false   # add 0.9x/1.1x train copies (changes the speed the describe labels state)
llm_vocab_size=500    # BPE vocabulary of the recipe's tokenizer
llm_hidden_size=128   # width of the tiny Qwen2
llm_num_layers=2      # depth of the tiny Qwen2
data_dir=data         # audio, manifests, features and the LLM folder
config_dir=configs    # where the data configs are written

. "$(dirname "${BASH_SOURCE[0]}")/../../tools/parse_options.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../../tools/recipe_stages.sh"

[ $# -eq 0 ] || die "unexpected argument '$1' (options start with --; see --help)"
recipe_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(cd "$recipe_dir/../.." && pwd)"
cd "$recipe_dir"
use_repo_venv "$repo_dir"  # the repository's .venv when none is active (`make setup`)

stage_0() {
  command -v espeak-ng > /dev/null 2>&1 \
    || die "espeak-ng was not found on PATH; install it with 'sudo apt-get install espeak-ng' (or run 'make setup')"
  command -v sox > /dev/null 2>&1 \
    || die "sox was not found on PATH; install it with 'sudo apt-get install sox' (or run 'make setup')"
  python local/synthesize.py --num-utts "$num_utts" --seed "$seed" --nj "$nj" \
    --audio-dir "$data_dir/audio" --local-dir "$data_dir/local"
}

stage_1() {
  python local/make_manifests.py --local-dir "$data_dir/local" --out-dir "$data_dir/manifests"
}

stage_2() {
  local perturbed=""
  [ "$speed_perturb" = true ] && perturbed="train"
  manifests_dir="$data_dir/manifests" compute_features mini_en "$data_dir/fbank" \
    "train dev test-seen test-unseen" "$perturbed" --num-jobs "$nj"
  python local/task_subsets.py --fbank-dir "$data_dir/fbank"
}

stage_3() {
  python local/collect_text.py --supervisions "$data_dir/manifests/mini_en_supervisions_train.jsonl.gz" \
    --prompts configs/prompts/*.txt --out "$data_dir/lang/train_text.txt"
  python -m auden.models.tiny_llm --text-file "$data_dir/lang/train_text.txt" --out "$data_dir/llm" \
    --vocab-size "$llm_vocab_size" --hidden-size "$llm_hidden_size" \
    --intermediate-size $((llm_hidden_size * 2)) --num-layers "$llm_num_layers"
}

stage_4() {
  python local/make_data_configs.py --fbank-dir "$data_dir/fbank" --config-dir "$config_dir"
}

# The settings a stage's own output depends on. A stage is redone, even without --stage,
# when its settings or those of any earlier stage differ from its last run's.
stage_settings() {
  case "$1" in
    0) echo "num_utts=$num_utts seed=$seed" ;;
    2) echo "speed_perturb=$speed_perturb" ;;
    3) echo "llm_vocab_size=$llm_vocab_size llm_hidden_size=$llm_hidden_size llm_num_layers=$llm_num_layers" ;;
    4) echo "config_dir=$config_dir" ;;
    *) echo "-" ;;
  esac
}

stage_names=("synthesise audio" "Lhotse manifests" "fbank features" "tokenizer and tiny LLM" "data configs")
last_stage=4
stages_init "$data_dir"
settings=""
for n in $(seq 0 $last_stage); do
  settings="${settings:+$settings }$(stage_settings "$n")"  # this stage's and every earlier one's
  if run_stage "$n" "${stage_names[$n]}" "" "$settings"; then
    start_ms=$(($(date +%s%N) / 1000000))
    "stage_$n"
    finish_stage "$n" "" "$settings"
    elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
    log "Stage $n: ${stage_names[$n]}: finished in $((elapsed_ms / 1000)).$((elapsed_ms % 1000 / 100)) s"
  fi
done
log "mini_en is ready under $(cd "$data_dir" && pwd)"
