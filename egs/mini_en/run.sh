#!/usr/bin/env bash
# mini_en end to end: what `make demo` runs. Offline, CPU only.
#
#   bash egs/mini_en/run.sh                       # every stage
#   bash egs/mini_en/run.sh --stage 1             # skip data preparation
#   bash egs/mini_en/run.sh --num-utts 2000       # a smaller corpus
#
#   stage 0: prepare.sh: synthesise the corpus, manifests, fbank, tokenizer + tiny LLM, data configs
#   stage 1: pretrain the Zipformer encoder with CTC on the transcripts, plus pooled heads for
#            the speaker's gender, speed and pitch and the sound event (torchrun, 2 processes);
#            then refit those heads on the frozen encoder (auden.training.fit_label_heads)
#   stage 2: pretrain the tiny LLM on the recipe's text (spoken words in place of the audio)
#   stage 3: train the audio LLM on top of both: all five tasks, the encoder adapting with a
#            joint CTC loss, the LLM frozen with LoRA (torchrun)
#   stage 4: evaluate.py: average checkpoints, decode every test set and task, score; then the
#            same LLM given the CTC words (cascade) and the true words (ceiling) as text
#   stage 5: export the averaged model and transcribe one test file with it
#   stage 6: print the results table
#
# Each stage prints a banner and its wall time; a summary of all of them ends the run.
set -euo pipefail

stage=0               # first stage to run
stop_stage=100        # last stage to run
nj=2                  # parallel jobs for data preparation
num_utts=8000         # corpus size (utterances over all splits), see prepare.sh
nproc=2               # training processes (torchrun --nproc_per_node)
ctc_steps=1100        # CTC encoder pretraining steps
llm_steps=2000        # text pretraining steps of the tiny LLM
audio_llm_steps=600   # audio LLM training steps
encoder_train=full    # what of the encoder adapts in stage 3: frozen | lora | top_layers | full
ctc_weight=0.3        # joint CTC loss weight in stage 3 (0: off; needs --projector mlp)
projector=ctc         # ctc: a position per CTC token + voice summary | mlp: frames stacked by 4
labels=true           # gender/speed/pitch/event heads on the encoder (stage 1 and 3), read out in stage 2
avg=3                 # checkpoints averaged for evaluation and export (a tenth of a stage apart)
exp=exp               # where the runs go

. "$(dirname "${BASH_SOURCE[0]}")/../../tools/parse_options.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../../tools/recipe_stages.sh"  # in_stage, end_stage, print_stage_times

[ $# -eq 0 ] || die "unexpected argument '$1' (see --help)"
recipe_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$recipe_dir"
use_repo_venv "$recipe_dir/../.."

if in_stage 0 "prepare data (prepare.sh)"; then
  bash prepare.sh --nj "$nj" --num-utts "$num_utts"
  end_stage
fi

# One thread per process: the processes already fill the cores, and OpenMP threads that
# wait on each other cost more than they give on small models.
export OMP_NUM_THREADS=1

ctc_exp="$exp/ctc"
llm_exp="$exp/llm"
audio_llm_exp="$exp/audio_llm"
# Checkpoints every tenth of a stage. Stages 1 and 3 hold their learning rate until the
# last avg tenths, then decay it (cosine, to a tenth); the average spans that decay. An
# average over a constant rate's steps mixes in weights from early training (stage 1:
# 9.2 WER averaged from 20% on, 2.4 over the decay; egs/mini_en/RESULTS.md).
save_every() { echo $(($1 / 10)); }
[ "$avg" -ge 1 ] && [ "$avg" -le 10 ] || die "--avg must be 1..10 (tenths of a stage), got '$avg'"
decay="trainer.scheduler.decay_fraction=$(awk "BEGIN { print $avg / 10 }")"
# Stages 1 and 3 validate once, at their end (each validation costs the demo ~7 s).

# Without label heads, the model configs' `labels` lists are emptied and stage 2 reads none out.
no_labels=""
label_fields="gender speed pitch event"
if [ "$labels" != true ]; then no_labels="model.labels=[]"; label_fields=""; fi

if in_stage 1 "pretrain the encoder with CTC"; then
  torchrun --standalone --nproc_per_node "$nproc" train.py --config-name train_ctc $no_labels \
    exp_dir="$ctc_exp" trainer.num_steps="$ctc_steps" trainer.save_every_n="$(save_every "$ctc_steps")" \
    "$decay" trainer.valid_interval="$ctc_steps"
  # The encoder's own greedy CTC WER: what the audio LLM can hope to hear.
  python evaluate.py exp_dir="$ctc_exp" data.test_data_config=configs/ctc_test_data.yaml \
    checkpoint.model.iter="$ctc_steps" checkpoint.model.avg="$avg"
  auden export "$ctc_exp" --iter "$ctc_steps" --avg "$avg" --out "$ctc_exp/export"
  if [ "$labels" = true ]; then
    # The label heads saw each clip ~4 times beside CTC; refitted for 50 epochs on the
    # frozen encoder's pooled clips they hear pitch far better (82 -> 95% on dev).
    OMP_NUM_THREADS="$nproc" python -m auden.training.fit_label_heads "$ctc_exp/export" \
      --train configs/ctc_train_data.yaml --valid configs/ctc_valid_data.yaml
  fi
  end_stage
fi

if in_stage 2 "pretrain the LLM on text"; then
  # The same trainer as the other stages (configs/train_llm.yaml, model=text_llm); the
  # export is a plain transformers folder, what stage 3 reads as model.llm.pretrained_model.
  torchrun --standalone --nproc_per_node "$nproc" train.py --config-name train_llm \
    exp_dir="$llm_exp" trainer.num_steps="$llm_steps" \
    trainer.save_every_n="$(save_every "$llm_steps")" "model.label_fields=[${label_fields// /,}]"
  auden export "$llm_exp" --filename "checkpoint-$llm_steps.pt" --out "$llm_exp/export"
  end_stage
fi

if in_stage 3 "train the audio LLM (encoder $encoder_train, joint CTC $ctc_weight, $projector projector, LoRA)"; then
  torchrun --standalone --nproc_per_node "$nproc" train.py \
    exp_dir="$audio_llm_exp" trainer.num_steps="$audio_llm_steps" \
    trainer.save_every_n="$(save_every "$audio_llm_steps")" "$decay" \
    trainer.valid_interval="$audio_llm_steps" \
    model.audio_encoder.pretrained_model="$ctc_exp/export" \
    model.audio_encoder.train="$encoder_train" model.ctc.weight="$ctc_weight" \
    model.projector.type="$projector" model.llm.pretrained_model="$llm_exp/export" $no_labels
  end_stage
fi

if in_stage 4 "evaluate every test set and task, and the cascade and text baselines"; then
  checkpoint="checkpoint.model.iter=$audio_llm_steps checkpoint.model.avg=$avg"
  # The same LLM (adapters off) reading words instead of audio: the encoder's CTC words
  # (the joint head when there is one, else the stage-1 encoder) and the true words.
  cascade_ctc=""
  [ "$ctc_weight" = 0 ] && cascade_ctc="baseline_ctc_model=$ctc_exp/export"
  # End to end and the cascade side by side, one process per core (-40 s of the demo);
  # their logs follow, then the text baseline's.
  logs="$audio_llm_exp/log"
  mkdir -p "$logs"
  python evaluate.py exp_dir="$audio_llm_exp" $checkpoint > "$logs/evaluate.txt" 2>&1 &
  end_to_end=$!
  python evaluate.py exp_dir="$audio_llm_exp" $checkpoint baseline=cascade $cascade_ctc \
    > "$logs/evaluate-cascade.txt" 2>&1 &
  cascade=$!
  failed=""
  wait "$end_to_end" || failed=" $logs/evaluate.txt"
  wait "$cascade" || failed="$failed $logs/evaluate-cascade.txt"
  cat "$logs/evaluate.txt" "$logs/evaluate-cascade.txt"
  [ -z "$failed" ] || die "evaluate.py failed, see:$failed"
  python evaluate.py exp_dir="$audio_llm_exp" $checkpoint baseline=text
  end_stage
fi

if in_stage 5 "export the averaged model and transcribe a file"; then
  auden export "$audio_llm_exp" --iter "$audio_llm_steps" --avg "$avg" --out "$audio_llm_exp/export"
  # sed reads to the end: `head` could stop `sort` mid-write, a SIGPIPE that pipefail
  # turns into a failed run (it did once, exit 141).
  wav=$(find data/audio/test-unseen -name '*.wav' | sort | sed -n 1p)
  auden transcribe "$audio_llm_exp/export" "$wav"
  end_stage
fi

if in_stage 6 "results"; then
  python local/results_table.py --exp-dir "$audio_llm_exp"
  end_stage
fi

print_stage_times "$exp/stage_timings.tsv"
