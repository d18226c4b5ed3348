#!/usr/bin/env bash
# The stages every transcribed-corpus recipe's run.sh shares, so that no run.sh copies
# another: pretrain the Zipformer with CTC, choose the LLM, train the audio LLM on both,
# evaluate it beside its cascade and text baselines, export it. A recipe's run.sh sets
# its own options, a `prepare` function (stage 0) and, if it likes, other defaults for
# the options below, then sources this file from its own folder:
#
#     dl_dir=              # where the corpus lies
#     prepare() { (cd "$user_dir" && bash "$recipe_dir/prepare.sh" --dl-dir "$dl_dir"); }
#     . "$(dirname "${BASH_SOURCE[0]}")/../../tools/audio_llm_stages.sh"
#
#   stage 0: prepare (the recipe's prepare.sh: manifests, features, data configs)
#   stage 1: pretrain the encoder with CTC on the transcripts (configs/train_ctc.yaml, labels
#            = the LLM's tokens), score its greedy CTC output, export it to <exp>/ctc/export
#   stage 2: the LLM: --llm as it is, or text-pretrained on the recipe's data (--llm-steps > 0,
#            train.py --config-name train_llm, exported to <exp>/llm/export)
#   stage 3: the audio LLM (configs/train.yaml) on the stage-1 encoder (or --encoder), the
#            encoder adapting as --encoder-train says, with joint CTC (--ctc-weight)
#   stage 4: evaluate the averaged audio LLM (and its joint CTC head), then the same LLM
#            reading the encoder's CTC words (baseline=cascade) and, for test sets of tasks
#            other than transcribe, the reference words (baseline=text)
#   stage 5: export the averaged audio LLM to <exp>/audio_llm/export
#
# Stage 3 never trains a Zipformer from scratch through the LLM loss alone: that does not
# learn (mini_en: ~99% WER after 15 minutes). It needs stage 1's export or --encoder.
# Extra Hydra overrides go through --ctc-args, --llm-args, --audio-llm-args and --eval-args.
set -euo pipefail
stage=${stage:-0}                          # first stage to run
stop_stage=${stop_stage:-5}                # last stage to run
exp=${exp:-exp}                            # where the runs go, in the recipe folder: <exp>/{ctc,llm,audio_llm}
nproc=${nproc:-auto}                       # training processes (torchrun); auto: one per visible GPU, else 1
llm=${llm:-}                               # the LLM, a transformers folder (Qwen2.5-7B-Instruct...); CTC learns its tokens
encoder=${encoder:-}                       # stage 3 encoder instead of stage 1's: a zipformer or zipformer_ctc folder
ctc_steps=${ctc_steps:-80000}              # stage 1: CTC pretraining steps
ctc_args=${ctc_args:-}                     # stage 1: more train.py overrides ("model.encoder.config=large ...")
llm_steps=${llm_steps:-0}                  # stage 2: text-pretraining steps of the LLM; 0 uses --llm as it is
llm_args=${llm_args:-}                     # stage 2: more train.py overrides (configs: egs/shared/configs/train_llm.yaml)
audio_llm_steps=${audio_llm_steps:-100000} # stage 3: audio LLM training steps
encoder_train=${encoder_train:-full}       # stage 3: what of the encoder adapts: frozen | lora | top_layers | full
encoder_lr=${encoder_lr:-}                 # stage 3: the encoder's learning rate (empty: trainer.optimizer.lr)
ctc_weight=${ctc_weight:-0.3}              # stage 3: joint CTC loss weight (0: off)
audio_llm_args=${audio_llm_args:-}         # stage 3: more train.py overrides
save_every=${save_every:-4000}             # stages 1-3: checkpoint interval in steps
avg=${avg:-5}                              # checkpoints averaged for evaluation and export
eval_args=${eval_args:-}                   # stages 1 and 4: more evaluate.py overrides

_tools_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$_tools_dir/parse_options.sh"
. "$_tools_dir/recipe_stages.sh"

[ $# -eq 0 ] || die "unexpected argument '$1' (options start with --; see --help)"
recipe_dir="$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)"
user_dir="$PWD"  # relative paths given on the command line are relative to it ...
[ -z "$llm" ] || llm="$(realpath -m "$llm")"
[ -z "$encoder" ] || encoder="$(realpath -m "$encoder")"
cd "$recipe_dir"  # ... but for --exp: train.py and evaluate.py run here, icefall style
use_repo_venv "$recipe_dir/../.."

ctc_exp="$exp/ctc"
llm_exp="$exp/llm"
audio_llm_exp="$exp/audio_llm"

# Where to find what an earlier stage made, or what the options name instead; each
# function stops the run with what to do when it is missing.
need_llm() {
  [ -n "$llm" ] || die "--llm is needed from stage 1 on: a transformers causal LM folder" \
    "(e.g. Qwen2.5-7B-Instruct). CTC learns its tokens in stage 1; nothing is downloaded."
  [ -f "$llm/config.json" ] || die "--llm '$llm' is not a transformers model folder (no config.json)"
}

# The LLM stage 3 builds on: stage 2's text-pretrained copy when --llm-steps > 0.
audio_llm_llm() {
  if [ "$llm_steps" -gt 0 ]; then
    [ -f "$llm_exp/export/config.json" ] \
      || die "--llm-steps $llm_steps: stage 3 builds on $llm_exp/export, which stage 2 writes; run it first"
    echo "$llm_exp/export"
  else
    echo "$llm"
  fi
}

# The encoder stage 3 starts from: --encoder, else stage 1's export. Never none.
pretrained_encoder() {
  local folder="${encoder:-$ctc_exp/export}"
  [ -f "$folder/config.json" ] || die "stage 3 needs a pretrained encoder, and '$folder' holds none." \
    "Run stage 1 (CTC pretraining, which exports $ctc_exp/export) or give --encoder DIR (a zipformer" \
    "or zipformer_ctc folder). A Zipformer trained from scratch through the LLM loss alone does not learn."
  echo "$folder"
}

# The CTC model baseline=cascade reads when the audio LLM has no joint CTC head.
cascade_ctc_model() {
  local folder
  for folder in "$ctc_exp/export" "$encoder"; do
    if [ -n "$folder" ] && grep -qs '"model_type": *"zipformer_ctc"' "$folder/config.json"; then
      echo "$folder"
      return
    fi
  done
}

launch() {
  if [ "$nproc" = auto ]; then
    nproc=$(python -c 'import torch; print(max(1, torch.cuda.device_count()))')
  fi
  torchrun --standalone --nproc_per_node "$nproc" "$@"
}

if in_stage 0 "prepare the corpus"; then
  prepare
  end_stage
fi

if in_stage 1 "pretrain the encoder with CTC on the LLM's tokens"; then
  need_llm
  # shellcheck disable=SC2086  # the extra overrides are words on purpose
  launch train.py --config-name train_ctc exp_dir="$ctc_exp" model.tokenizer="$llm" \
    trainer.num_steps="$ctc_steps" trainer.save_every_n="$save_every" $ctc_args
  # The encoder's own greedy CTC error rate: what the audio LLM can hope to hear.
  # shellcheck disable=SC2086
  python evaluate.py exp_dir="$ctc_exp" data.test_data_config=configs/ctc_test_data.yaml \
    checkpoint.model.iter="$ctc_steps" checkpoint.model.avg="$avg" $eval_args
  auden export "$ctc_exp" --iter "$ctc_steps" --avg "$avg" --out "$ctc_exp/export"
  end_stage
fi

if in_stage 2 "the LLM"; then
  need_llm
  if [ "$llm_steps" -gt 0 ]; then
    # The same trainer as stages 1 and 3 (egs/shared/configs/train_llm.yaml, model=text_llm);
    # the export is a plain transformers folder with the audio token, what stage 3 reads.
    # shellcheck disable=SC2086
    launch train.py --config-name train_llm exp_dir="$llm_exp" model.pretrained_model="$llm" \
      trainer.num_steps="$llm_steps" trainer.save_every_n="$save_every" $llm_args
    auden export "$llm_exp" --filename "checkpoint-$llm_steps.pt" --out "$llm_exp/export"
  else
    python -c 'import sys; from transformers import AutoConfig, AutoTokenizer
AutoConfig.from_pretrained(sys.argv[1]); AutoTokenizer.from_pretrained(sys.argv[1])' "$llm" \
      || die "--llm '$llm' does not load with transformers AutoConfig/AutoTokenizer"
    log "the audio LLM builds on --llm as it is: $llm"
  fi
  end_stage
fi

if in_stage 3 "train the audio LLM (encoder $encoder_train, joint CTC $ctc_weight)"; then
  need_llm
  enc_folder="$(pretrained_encoder)"
  llm_folder="$(audio_llm_llm)"
  extra=()
  [ -z "$encoder_lr" ] || extra+=("++trainer.optimizer.part_lr.audio_encoder=$encoder_lr")
  # shellcheck disable=SC2086
  launch train.py exp_dir="$audio_llm_exp" trainer.num_steps="$audio_llm_steps" \
    trainer.save_every_n="$save_every" model.audio_encoder.pretrained_model="$enc_folder" \
    model.audio_encoder.train="$encoder_train" model.ctc.weight="$ctc_weight" \
    model.llm.pretrained_model="$llm_folder" "${extra[@]}" $audio_llm_args
  end_stage
fi

if in_stage 4 "evaluate the audio LLM, its cascade and its text ceiling"; then
  checkpoint=(checkpoint.model.iter="$audio_llm_steps" checkpoint.model.avg="$avg")
  # shellcheck disable=SC2086
  python evaluate.py exp_dir="$audio_llm_exp" "${checkpoint[@]}" $eval_args
  # The same LLM (adapters off) reading words instead of audio: the encoder's CTC words
  # (the joint head when there is one, else the stage-1 model) and the reference words.
  cascade=(baseline=cascade)
  if [ "$ctc_weight" = 0 ]; then
    ctc_model="$(cascade_ctc_model)"
    if [ -n "$ctc_model" ]; then cascade+=(baseline_ctc_model="$ctc_model"); else cascade=(); fi
  fi
  if [ ${#cascade[@]} -gt 0 ]; then
    # shellcheck disable=SC2086
    python evaluate.py exp_dir="$audio_llm_exp" "${checkpoint[@]}" "${cascade[@]}" $eval_args
  else
    log "no cascade baseline: no joint CTC head (--ctc-weight 0) and no zipformer_ctc model"
  fi
  # The reference words (the ceiling) only mean something for tasks other than transcribe.
  if grep -v 'task: transcribe' configs/test_data.yaml | grep -q 'task:'; then
    # shellcheck disable=SC2086
    python evaluate.py exp_dir="$audio_llm_exp" "${checkpoint[@]}" baseline=text $eval_args
  else
    log "no text baseline: configs/test_data.yaml holds transcribe test sets only"
  fi
  end_stage
fi

if in_stage 5 "export the averaged audio LLM"; then
  auden export "$audio_llm_exp" --iter "$audio_llm_steps" --avg "$avg" --out "$audio_llm_exp/export"
  end_stage
fi

print_stage_times "$exp/stage_timings.tsv"
