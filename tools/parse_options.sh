#!/usr/bin/env bash
# Kaldi-style option parsing for recipe scripts.
#
# Source this file AFTER the script has defined its options as shell variables:
#
#     stage=0          # first stage to run
#     stop_stage=100   # last stage to run
#     nj=4             # parallel jobs
#     use_gpu=false    # true|false
#     . tools/parse_options.sh
#
# Then `script.sh --stage 2 --stop-stage 4 --nj=8 extra args` sets stage=2,
# stop_stage=4, nj=8 and leaves "extra args" as the positional parameters.
#   * `--some-name` sets the variable `some_name` (dashes become underscores);
#     `--name value` and `--name=value` are both accepted.
#   * an option for a variable the script did not define is an error naming it;
#   * a variable whose default is true/false accepts only true or false;
#   * `--help` (or `-h`) prints the script's options with their defaults, read from
#     the `name=value  # comment` lines above the first line that sources a file,
#     after "$help_message" if the script defines one. When a shared stage file sources
#     this one for a recipe's run.sh, the run.sh's own options are listed first.
#   * `--` ends option parsing.
#   * afterwards, $parse_options_given lists the variables set on the command line
#     (" stage nj "), so a script can tell an explicit `--stage 0` from the default.

_po_script="${BASH_SOURCE[1]:-$0}"
_po_name="$(basename "$_po_script")"

_po_print_help() {
  if [ -n "${help_message:-}" ]; then
    printf '%s\n\n' "$help_message"
  else
    printf 'Usage: %s [options] [args]\n\n' "$_po_name"
  fi
  printf 'Options (default in brackets):\n'
  local _po_line _po_v _po_comment _po_shown="" _po_file _po_files=("$_po_script")
  if [ -f "$0" ] && ! [ "$0" -ef "$_po_script" ]; then _po_files=("$0" "$_po_script"); fi
  for _po_file in "${_po_files[@]}"; do
    # The option block: assignments at the start of a line, before the first `. file`.
    while IFS= read -r _po_line; do
      if [[ "$_po_line" =~ ^[[:space:]]*(\.|source)[[:space:]] ]]; then
        break
      fi
      if [[ "$_po_line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=[^#]*(#[[:space:]]*(.*))?$ ]]; then
        _po_v="${BASH_REMATCH[1]}"
        _po_comment="${BASH_REMATCH[3]}"
        case " $_po_shown " in *" $_po_v "*) continue ;; esac
        case "$_po_v" in help_message|_*) continue ;; esac
        _po_shown="$_po_shown $_po_v"
        printf '  --%-22s %-30s %s\n' "${_po_v//_/-}" "[${!_po_v-}]" "$_po_comment"
      fi
    done < "$_po_file"
  done
  printf '  --%-22s %-30s %s\n' "help" "" "print this message and exit"
}

parse_options_given=" "
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      _po_print_help
      exit 0
      ;;
    --)
      shift
      break
      ;;
    --*=*)
      _po_opt="${1%%=*}"
      _po_value="${1#*=}"
      shift
      ;;
    --*)
      _po_opt="$1"
      if [ $# -lt 2 ]; then
        echo "$_po_name: option $_po_opt needs a value (see --help)" >&2
        exit 1
      fi
      _po_value="$2"
      shift 2
      ;;
    *)
      break
      ;;
  esac
  _po_var="${_po_opt#--}"
  _po_var="${_po_var//-/_}"
  if ! [[ "$_po_var" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!_po_var+x}" ] \
      || [[ "$_po_var" == _po_* ]]; then
    echo "$_po_name: unknown option '$_po_opt' (the script defines no variable '$_po_var'; see --help)" >&2
    exit 1
  fi
  _po_old="${!_po_var}"
  if [ "$_po_old" = true ] || [ "$_po_old" = false ]; then
    if [ "$_po_value" != true ] && [ "$_po_value" != false ]; then
      echo "$_po_name: option '$_po_opt' takes true or false, not '$_po_value'" >&2
      exit 1
    fi
  fi
  printf -v "$_po_var" '%s' "$_po_value"
  parse_options_given="$parse_options_given$_po_var "
done

unset -f _po_print_help
unset _po_script _po_name _po_opt _po_value _po_var _po_old
true
