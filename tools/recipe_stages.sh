#!/usr/bin/env bash
# Stage gating for recipe prepare.sh scripts, icefall style, with a marker per finished stage.
#
# Source it AFTER tools/parse_options.sh, which records the options given in
# $parse_options_given:
#
#     . "$tools/parse_options.sh"
#     . "$tools/recipe_stages.sh"
#     stages_init data              # markers live in data/.stage-<K>.done
#     if run_stage 1 "manifests"; then ...; finish_stage 1; fi
#
# Stage K runs when stage <= K <= stop_stage and either its marker is missing or the
# user named the range on the command line (--stage/--stop-stage): a plain re-run skips
# finished stages, `--stage 2 --stop-stage 2` redoes stage 2. The marker is written
# last, so a stage interrupted half-way is redone on the next run.

_recipe_tools_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_stages_explicit=false
case "${parse_options_given:-}" in
  *" stage "*|*" stop_stage "*) _stages_explicit=true ;;
esac

log() {
  echo "$(date '+%F %T') (${0##*/}) $*"
}

die() {
  echo "${0##*/}: error: $*" >&2
  exit 1
}

# stages_init DIR [TAG]: markers go to DIR/.stage-<K>[-TAG].done
stages_init() {
  _stages_dir="$1"
  mkdir -p "$_stages_dir"
}

_stage_marker() {
  local k="$1" tag="${2:-}"
  echo "$_stages_dir/.stage-$k${tag:+-$tag}.done"
}

# run_stage K DESCRIPTION [TAG] [SETTINGS]: true when stage K should run now (and logs why
# not). SETTINGS, when given, is a one-line summary of the options the stage's output
# depends on ("parts=dev-clean nj=4"): a finished stage whose settings differ is redone.
run_stage() {
  local k="$1" what="$2" tag="${3:-}" settings="${4:-}" marker
  marker="$(_stage_marker "$k" "$tag")"
  if [ "$k" -lt "$stage" ] || [ "$k" -gt "$stop_stage" ]; then
    return 1
  fi
  if [ -f "$marker" ] && [ "$_stages_explicit" != true ]; then
    if [ -z "$settings" ] || [ "$(sed -n 2p "$marker")" = "$settings" ]; then
      log "Stage $k: $what: done already, skipping ($marker)"
      return 1
    fi
    log "Stage $k: settings changed since it was done ($(sed -n 2p "$marker") -> $settings)"
  fi
  # An interrupted redo must not look finished on the next run.
  rm -f "$marker"
  log "Stage $k: $what"
  return 0
}

# finish_stage K [TAG] [SETTINGS]: mark stage K finished (the date, then its settings).
finish_stage() {
  printf '%s\n%s\n' "$(date '+%F %T')" "${3:-}" > "$(_stage_marker "$1" "${2:-}")"
}

# use_repo_venv REPO_DIR: put REPO_DIR/.venv/bin first on PATH when no venv is active,
# so `bash egs/<recipe>/prepare.sh` finds python and lhotse after `make setup`.
use_repo_venv() {
  if [ -z "${VIRTUAL_ENV:-}" ] && [ -x "$1/.venv/bin/python" ]; then
    export PATH="$1/.venv/bin:$PATH"
  fi
}

# compute_features CORPUS FEATS_DIR "SPLITS" "PERTURBED" [compute_fbank.py options...]:
# features of $manifests_dir (default data/manifests)/CORPUS_{recordings,supervisions}_<split>.jsonl.gz into
# FEATS_DIR/CORPUS_cuts_<split>.jsonl.gz, one process per group of splits: those named in
# PERTURBED (which also get 0.9x/1.1x speed copies), then the others.
compute_features() {
  local corpus="$1" feats_dir="$2" splits="$3" perturbed="$4" plain="" split
  shift 4
  for split in $splits; do
    case " $perturbed " in *" $split "*) ;; *) plain="$plain $split" ;; esac
  done
  _compute_fbank_group "$corpus" "$feats_dir" "$perturbed" --speed-perturb "$@"
  _compute_fbank_group "$corpus" "$feats_dir" "$plain" "$@"
}

_compute_fbank_group() {
  local corpus="$1" feats_dir="$2" splits="$3"
  shift 3
  [ -n "${splits// /}" ] || return 0
  # shellcheck disable=SC2086  # the split names are words on purpose
  python "$_recipe_tools_dir/compute_fbank.py" --splits $splits \
    --recordings "${manifests_dir:-data/manifests}/${corpus}_recordings_{split}.jsonl.gz" \
    --supervisions "${manifests_dir:-data/manifests}/${corpus}_supervisions_{split}.jsonl.gz" \
    --out "$feats_dir/${corpus}_cuts_{split}.jsonl.gz" \
    --storage "$feats_dir/${corpus}_feats_{split}" "$@"
}

# ---- Timed stages for run.sh (training and evaluation: no markers, a stage reruns when
# named). Source this file after parse_options.sh, then:
#
#     if in_stage 1 "pretrain the encoder with CTC"; then ...; end_stage; fi
#     print_stage_times exp/stage_timings.tsv   # at the end: the wall time of every stage run
_stage_timings=()
_stage_tsv=()  # "stage<TAB>seconds" rows (benchmarks/bench_demo.py reads mini_en's)
_run_start_ms=$(($(date +%s%N) / 1000000))

_seconds_since() {
  local ms=$(($(date +%s%N) / 1000000 - $1))
  echo "$((ms / 1000)).$((ms % 1000 / 100))"
}

# in_stage K NAME: true when stage <= K <= stop_stage; prints a banner and starts the clock.
in_stage() {
  if [ "$1" -lt "$stage" ] || [ "$1" -gt "$stop_stage" ]; then return 1; fi
  _current_stage="$1: $2"
  log "================ Stage $_current_stage ================"
  _stage_start_ms=$(($(date +%s%N) / 1000000))
}

# end_stage: logs the wall time of the stage just run and keeps it for print_stage_times.
end_stage() {
  local took
  took="$(_seconds_since "$_stage_start_ms")"
  log "Stage $_current_stage: done in $took s"
  _stage_timings+=("$(printf '  stage %-40s %10s' "$_current_stage" "$took s")")
  _stage_tsv+=("$_current_stage"$'\t'"$took")
}

# print_stage_times [TSV]: the time of every stage run and the total; with TSV, the same as
# a file (stage, seconds), written whole and then renamed, when any stage ran.
print_stage_times() {
  local line total
  total="$(_seconds_since "$_run_start_ms")"
  log "Time per stage:"
  for line in "${_stage_timings[@]}"; do echo "$line"; done
  log "total: $total s"
  if [ -n "${1:-}" ] && [ ${#_stage_tsv[@]} -gt 0 ]; then
    mkdir -p "$(dirname "$1")"
    {
      printf 'stage\tseconds\n'
      for line in "${_stage_tsv[@]}"; do printf '%s\n' "$line"; done
      printf 'total\t%s\n' "$total"
    } > "$1.tmp"
    mv "$1.tmp" "$1"
    log "stage times written to $1"
  fi
}
