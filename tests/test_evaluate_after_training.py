"""A short real training run, then evaluation from its checkpoints (micro CTC Zipformer)."""

from __future__ import annotations

import pytest
import torch
from tiny_training import make_training_setup
from tinycorpus import write_data_config

from auden.checkpoint import CheckpointSpec, load_model
from auden.data.config import load_data_config
from auden.decoding.config import CheckpointConfig, EvalConfig, EvalDataConfig
from auden.decoding.decode import (
    build_test_loader,
    decode_utterances,
    eval_data_config,
    evaluate,
)
from auden.training.loop import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_corpus):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("eval_after_training")
    setup = make_training_setup(root / "setup", tiny_corpus)
    exp_dir = root / "exp"
    train(setup.train_config(exp_dir, num_steps=6, save_every_n=3, average_period=1))
    test_config = write_data_config(
        root / "test_data.yaml",
        [
            {"name": "tiny_transcribe", "manifest": str(tiny_corpus.cuts), "task": "transcribe"},
            {
                "name": "tiny_describe",
                "manifest": str(tiny_corpus.cuts),
                "task": "describe",
                "prompt_file": str(tiny_corpus.prompt_files["describe"]),
            },
        ],
    )
    return exp_dir, test_config


def test_evaluate_iter_avg_after_training_writes_every_file(trained, tiny_corpus):
    exp_dir, test_config = trained
    assert (exp_dir / "checkpoint-3.pt").is_file() and (exp_dir / "checkpoint-6.pt").is_file()
    cfg = EvalConfig(
        exp_dir=str(exp_dir),
        checkpoint=CheckpointConfig(model=CheckpointSpec(iter=6, avg=1)),
        data=EvalDataConfig(test_data_config=str(test_config), num_workers=0),
        max_duration=30.0,
    )
    result = evaluate(cfg)

    averaged = torch.load(result.checkpoint, weights_only=True)
    assert result.checkpoint.name == "averaged-iter-6-avg-1.pt"
    # the trainer's running average is there, so the mean over steps (3, 6] is recovered
    assert averaged["averaged_from"] == {
        "method": "running_average",
        "sources": ["checkpoint-3.pt", "checkpoint-6.pt"],
    }
    assert result.suffix == "iter-6-avg-1-use-averaged-model"
    for name in ("tiny_transcribe", "tiny_describe"):
        for kind in ("recogs", "errs", "wer-summary"):
            path = exp_dir / "greedy_search" / f"{kind}-{name}-{result.suffix}.txt"
            assert path.is_file() and path.stat().st_size > 0
    transcribe, describe = result.test_sets
    assert transcribe.scores.num_utts == len(tiny_corpus.cut_ids)
    assert [m for m, _ in describe.scores.as_rows()] == ["WER", "exact_match"]

    # evaluating again reuses the averaged file
    made = result.checkpoint.stat().st_mtime_ns
    evaluate(cfg)
    assert result.checkpoint.stat().st_mtime_ns == made


def test_ctc_hypotheses_do_not_depend_on_the_batch(trained, tiny_corpus):
    exp_dir, test_config = trained
    model = load_model(exp_dir / "checkpoint-6.pt")
    source = load_data_config(test_config)[0]
    data = eval_data_config(
        EvalConfig(data=EvalDataConfig(num_workers=0)), {"data": {}}, model.features
    )
    hyps = {}
    for max_duration in (5.0, 500.0):
        loader, n = build_test_loader(
            source, data, max_duration=max_duration, seed=0, num_buckets=1
        )
        hyps[max_duration] = {u.cut_id: u.hyp for u in decode_utterances(model, loader, total=n)}
    assert hyps[5.0] == hyps[500.0]
    assert len(hyps[5.0]) == len(tiny_corpus.cut_ids)
    assert any(hyps[5.0].values())  # not all blank after 6 steps
