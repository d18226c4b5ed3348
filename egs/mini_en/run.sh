#!/usr/bin/env bash
# mini_en end to end: what `make demo` runs. Offline, CPU only.
#
#   bash egs/mini_en/run.sh                       # every stage
#   bash egs/mini_en/run.sh --stage 1             # skip data preparation
#   bash egs/mini_en/run.sh --num-utts 2000       # a smaller corpus
#
#   stage 0: prepare.sh: synthesise the corpus, manifests, fbank, tokenizer + tiny LLM, data configs
#   (training, evaluation and export stages are appended here as they land)
#
# Each stage prints a banner and its wall time; a summary of all of them ends the run.
set -euo pipefail

stage=0               # first stage to run
stop_stage=100        # last stage to run
nj=2                  # parallel jobs for data preparation
num_utts=8000         # corpus size (utterances over all splits), see prepare.sh

. "$(dirname "${BASH_SOURCE[0]}")/../../tools/parse_options.sh"

[ $# -eq 0 ] || { echo "run.sh: unexpected argument '$1' (see --help)" >&2; exit 1; }
recipe_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(cd "$recipe_dir/../.." && pwd)"
cd "$recipe_dir"
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x "$repo_dir/.venv/bin/python" ]; then
  export PATH="$repo_dir/.venv/bin:$PATH"
fi

log() { echo "$(date '+%F %T') (run.sh) $*"; }

stage_timings=()
run_start_ms=$(($(date +%s%N) / 1000000))

# in_stage K NAME: true when stage K is selected; prints its banner and starts its clock.
in_stage() {
  if [ "$1" -lt "$stage" ] || [ "$1" -gt "$stop_stage" ]; then return 1; fi
  current_stage="$1: $2"
  log "================ Stage $current_stage ================"
  stage_start_ms=$(($(date +%s%N) / 1000000))
}

# end_stage: logs the time of the stage just run and keeps it for the summary.
end_stage() {
  local ms=$(($(date +%s%N) / 1000000 - stage_start_ms))
  local took="$((ms / 1000)).$((ms % 1000 / 100)) s"
  log "Stage $current_stage: done in $took"
  stage_timings+=("$(printf '  stage %-40s %10s' "$current_stage" "$took")")
}

if in_stage 0 "prepare data (prepare.sh)"; then
  bash prepare.sh --nj "$nj" --num-utts "$num_utts"
  end_stage
fi

total_ms=$(($(date +%s%N) / 1000000 - run_start_ms))
log "Time per stage:"
for line in "${stage_timings[@]}"; do echo "$line"; done
log "total: $((total_ms / 1000)).$((total_ms % 1000 / 100)) s"
