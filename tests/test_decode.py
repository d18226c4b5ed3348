"""Evaluation end to end on a tiny AudioLlm: resolve + average, batched decoding, scores, files."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from lhotse import load_manifest
from tiny_audio_llm import make_tiny_llm, tiny_config
from tinycorpus import TASK_PROMPTS, write_data_config

from auden.audio.features import FeatureSpec
from auden.auto.auto_config import config_to_dict
from auden.checkpoint import CheckpointSpec, load_model
from auden.data.config import load_data_config
from auden.decoding.config import (
    CheckpointConfig,
    EvalConfig,
    EvalDataConfig,
    as_eval_config,
    register_configs,
)
from auden.decoding.decode import (
    build_test_loader,
    decode_utterances,
    eval_data_config,
    evaluate,
)
from auden.models.audio_llm import AudioLlm

REPO = Path(__file__).resolve().parents[1]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}
NUM_CUTS = 8
# The tiny Whisper reads whisper_fbank: computed from the wavs (the corpus stores kaldi fbank).
TRAIN_DATA = {"on_the_fly_feats": True}


@pytest.fixture(scope="module")
def trained_exp(tmp_path_factory, tiny_corpus):
    """An exp_dir with checkpoint-10.pt and checkpoint-20.pt of a tiny AudioLlm with LoRA
    (random weights: the hypotheses are nonsense, but deterministic), and a test data config.

    LoRA's B matrices start at zero; random ones make the frozen random LLM's reply depend
    on the audio, which a batch-invariance test needs (else every reply is the same)."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("decode")
    config = tiny_config(make_tiny_llm(root / "llm"))
    config.llm.lora = replace(config.llm.lora, enabled=True)
    model = AudioLlm.from_config(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=1.0)
    exp_dir = root / "exp"
    exp_dir.mkdir()
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    for step in (10, 20):
        state = {k: v + 0.01 * step * torch.randn_like(v) for k, v in trainable.items()}
        torch.save(
            {
                "model": state,
                "batch_idx_train": step,
                "epoch": 1,
                "config": {"model": config_to_dict(config), "data": TRAIN_DATA},
            },
            exp_dir / f"checkpoint-{step}.pt",
        )
    few_cuts = root / "few_cuts.jsonl.gz"  # 8 cuts keep the end-to-end runs short
    load_manifest(tiny_corpus.cuts).subset(first=NUM_CUTS).to_file(few_cuts)
    test_config = write_data_config(
        root / "test_data.yaml",
        [
            {
                "name": "tiny_transcribe",
                "manifest": str(few_cuts),
                "task": "transcribe",
                "prompt_file": str(tiny_corpus.prompt_files["transcribe"]),
            },
            {"name": "tiny_answer", "manifest": str(few_cuts), "task": "answer"},
        ],
    )
    return exp_dir, test_config, trainable


def _cfg(exp_dir: Path, test_config: Path, **overrides) -> EvalConfig:
    cfg = EvalConfig(
        exp_dir=str(exp_dir),
        checkpoint=CheckpointConfig(model=CheckpointSpec(iter=20, avg=2)),
        data=EvalDataConfig(test_data_config=str(test_config), num_workers=0),
        max_new_tokens=6,
        max_duration=60.0,
    )
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def test_evaluate_writes_recogs_errs_and_summary_for_every_test_set(trained_exp, tiny_corpus):
    exp_dir, test_config, trainable = trained_exp
    result = evaluate(_cfg(exp_dir, test_config))

    assert result.checkpoint == exp_dir / "averaged-iter-20-avg-2.pt"
    averaged = torch.load(result.checkpoint, weights_only=True)["model"]
    name = next(iter(trainable))
    first = torch.load(exp_dir / "checkpoint-10.pt", weights_only=True)["model"][name]
    second = torch.load(exp_dir / "checkpoint-20.pt", weights_only=True)["model"][name]
    assert torch.allclose(averaged[name], (first + second) / 2)

    assert result.out_dir == exp_dir / "greedy_search"
    assert result.suffix == "iter-20-avg-2"
    for test_set in ("tiny_transcribe", "tiny_answer"):
        for kind in ("recogs", "errs", "wer-summary"):
            assert (exp_dir / "greedy_search" / f"{kind}-{test_set}-iter-20-avg-2.txt").is_file()

    transcribe, answer = result.test_sets
    assert transcribe.scores.num_utts == answer.scores.num_utts == NUM_CUTS
    assert [m for m, _ in transcribe.scores.as_rows()] == ["WER"]
    assert [m for m, _ in answer.scores.as_rows()] == ["exact_match"]
    # every utterance once, with a prompt from its task's prompt file, recorded in recogs
    assert sorted(u.cut_id for u in transcribe.utterances) == sorted(tiny_corpus.cut_ids[:NUM_CUTS])
    assert {u.prompt for u in transcribe.utterances} <= set(TASK_PROMPTS["transcribe"])
    assert {u.prompt for u in answer.utterances} == {"Answer the question in the audio."}
    recogs = transcribe.files["recogs"].read_text()
    u = transcribe.utterances[0]
    assert f"{u.cut_id}:\tprompt={u.prompt}\n{u.cut_id}:\tref={u.ref}\n" in recogs
    summary = transcribe.files["wer_summary"].read_text().splitlines()
    assert summary[0] == "settings\tWER\tutterances"
    assert summary[1].startswith("greedy_search-iter-20-avg-2\t")
    assert result.table.splitlines()[2].split()[:3] == ["tiny_transcribe", "transcribe", "WER"]


def test_same_hypotheses_at_max_duration_5_and_500(trained_exp, tiny_corpus):
    exp_dir, test_config, _ = trained_exp
    model = load_model(exp_dir / "checkpoint-20.pt")
    data = eval_data_config(_cfg(exp_dir, test_config), {"data": TRAIN_DATA}, model.features)
    source = replace(load_data_config(test_config)[0], manifest=tiny_corpus.cuts)  # all 24
    hyps = {}
    for max_duration in (5.0, 500.0):
        # one bucket: at 500 s every clip, 0.6 to 2 s long, shares one padded batch
        loader, n = build_test_loader(
            source, data, max_duration=max_duration, seed=7, num_buckets=1
        )
        batch_sizes = [len(b) for b in loader]
        assert sum(batch_sizes) == n
        utts = decode_utterances(model, loader, max_new_tokens=4, total=n)
        hyps[max_duration] = {u.cut_id: (u.prompt, u.hyp) for u in utts}
        if max_duration == 5.0:
            assert max(batch_sizes) < n / 2  # really several batches
        else:
            assert batch_sizes == [n]  # really one batch
    assert hyps[5.0] == hyps[500.0]
    assert len({h for _, h in hyps[5.0].values()}) > 1  # not one constant string


def test_prompts_are_drawn_by_the_seed(trained_exp):
    exp_dir, test_config, _ = trained_exp
    data = eval_data_config(
        _cfg(exp_dir, test_config), {"data": TRAIN_DATA}, FeatureSpec("fbank", 80)
    )
    source = load_data_config(test_config)[0]

    def prompts(seed):
        loader, _ = build_test_loader(source, data, max_duration=60.0, seed=seed)
        return [p for b in loader for p in b.prompts]

    assert prompts(1) == prompts(1)
    assert prompts(1) != prompts(2)
    assert set(prompts(1)) == set(TASK_PROMPTS["transcribe"])


def test_checkpoint_without_trainable_weights_is_rejected(trained_exp, tmp_path):
    exp_dir, _, trainable = trained_exp
    ckpt = torch.load(exp_dir / "checkpoint-10.pt", weights_only=True)
    dropped = next(iter(trainable))
    del ckpt["model"][dropped]
    torch.save(ckpt, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match=f"does not match the model: missing.*{dropped}"):
        load_model(tmp_path / "broken.pt")


def test_evaluate_py_of_mini_en_runs_from_the_command_line(trained_exp):
    exp_dir, test_config, _ = trained_exp
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "egs/mini_en/evaluate.py"),
            f"exp_dir={exp_dir}",
            "checkpoint.model.filename=checkpoint-10.pt",
            f"data.test_data_config={test_config}",
            "data.num_workers=0",
            "max_new_tokens=3",
            "decoding_method=beam_search",
            "beam_size=2",
        ],
        capture_output=True,
        text=True,
        cwd=REPO / "egs/mini_en",
        timeout=300,
        env=ONE_THREAD,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for test_set in ("tiny_transcribe", "tiny_answer"):
        assert (exp_dir / "beam_search" / f"errs-{test_set}-checkpoint-10-beam-2.txt").is_file()
    table_row = [line.split() for line in out.stdout.splitlines() if line.startswith("tiny_answer")]
    assert table_row and table_row[-1][:3] == ["tiny_answer", "answer", "exact_match"]


def test_a_misspelt_eval_key_is_rejected_by_name():
    register_configs()
    with initialize_config_dir(str(REPO / "egs/mini_en/configs"), version_base="1.3"):
        cfg = compose("evaluate", overrides=["checkpoint.model.iter=8", "checkpoint.model.avg=2"])
        assert as_eval_config(cfg).checkpoint.model == CheckpointSpec(iter=8, avg=2)
        with pytest.raises(ConfigCompositionException) as err:
            compose("evaluate", overrides=["checkpoint.model.itr=5"])
    assert "checkpoint.model.itr" in str(err.value.__cause__ or err.value)
