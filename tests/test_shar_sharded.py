"""Lhotse Shar export and sharded reading: every reader its own shards, exact cheap resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lhotse import load_manifest
from tinycorpus import write_data_config

from auden.checkpoint import load_checkpoint
from auden.data.config import DataConfig, DataSource, load_data_config
from auden.data.loader import ShardedTrainData, TrainData, build_train_data
from auden.data.mixing import read_source
from auden.data.shar import export_shar, list_shards
from auden.data.sharded import ShardPlan, source_shards
from auden.training import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shar_dir(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("shar") / "train"
    export_shar(tiny_corpus.cuts, out, shard_size=5)
    return out


def test_shar_round_trip_reads_back_the_cuts_and_their_features(tiny_corpus, shar_dir):
    shards = list_shards(shar_dir)
    assert [s.num_cuts for s in shards] == [5, 5, 5, 5, 4]
    assert all(set(s.fields) == {"features"} for s in shards)
    originals = load_manifest(tiny_corpus.cuts)
    source = DataSource(manifest=None, shar_dir=shar_dir, task="transcribe", name="shar")
    read = list(read_source(source))
    assert [c.id for c in read] == [c.id for c in originals]
    for back, orig in zip(read, originals):
        assert back.duration == orig.duration
        assert back.supervisions[0].text == orig.supervisions[0].text
        assert back.custom["task"] == "transcribe"
        a, b = back.load_features(), orig.load_features()
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_a_data_config_entry_names_a_manifest_or_a_shar_folder_not_both(
    tiny_corpus, shar_dir, tmp_path
):
    config = write_data_config(tmp_path / "d.yaml", [
        {"shar_dir": str(shar_dir), "task": "transcribe", "weight": 2},
        {"manifest": str(tiny_corpus.cuts), "task": "describe"},
    ])
    shar, jsonl = load_data_config(config)
    assert shar.shar_dir == shar_dir and shar.manifest is None and shar.name == "train:transcribe"
    assert jsonl.manifest == tiny_corpus.cuts and jsonl.shar_dir is None
    both = write_data_config(tmp_path / "b.yaml", [
        {"shar_dir": str(shar_dir), "manifest": str(tiny_corpus.cuts), "task": "transcribe"}
    ])
    with pytest.raises(ValueError, match="entry 0: name exactly one of 'manifest' and 'shar_dir'"):
        load_data_config(both)


def test_each_shard_is_read_by_one_reader_per_epoch_and_the_deal_changes_with_the_epoch(
    tiny_corpus, shar_dir
):
    sources = [DataSource(manifest=None, shar_dir=shar_dir, task="transcribe", name="s"),
               DataSource(manifest=tiny_corpus.cuts, task="describe", name="j")]
    plan = ShardPlan.build(sources, num_readers=2, seed=1, jsonl_shard_cuts=5)
    assert [len(s) for s in plan.shards] == [5, 6]  # jsonl: a multiple of the readers
    deals = {}
    for epoch in (1, 2):
        for i in range(2):
            dealt = [plan.reader_shards(epoch, r)[i] for r in range(2)]
            assert sorted(map(id, dealt[0] + dealt[1])) == sorted(map(id, plan.shards[i]))
        deals[epoch] = [s.shar.cuts for s in plan.reader_shards(epoch, 0)[0]]
    assert deals[1] != deals[2]
    with pytest.raises(ValueError, match=r"'s' .*5 shard\(s\) .* for 6 readers"):
        source_shards(sources[0], num_readers=6, jsonl_shard_cuts=5)


def test_weighted_draws_follow_the_weights_for_shar_and_jsonl_alike(tiny_corpus, shar_dir):
    sources = [DataSource(manifest=None, shar_dir=shar_dir, task="transcribe", weight=3),
               DataSource(manifest=tiny_corpus.cuts, task="describe", weight=1)]
    plan = ShardPlan.build(sources, num_readers=1, seed=3, cuts_per_epoch=20000)
    draws = np.concatenate([plan.draws(1, 0, s) for s in range(plan.num_segments(0))])
    assert len(draws) == 20000
    assert abs(float(np.mean(draws == 0)) - 0.75) < 0.015


def _sharded_config(tiny_corpus, shar_dir, tmp_path, **kw) -> DataConfig:
    config = write_data_config(tmp_path / "mix.yaml", [
        {"shar_dir": str(shar_dir), "task": "transcribe", "weight": 2},
        {"manifest": str(tiny_corpus.cuts), "task": "describe", "weight": 1,
         "prompt_file": str(tiny_corpus.prompt_files["describe"])},
    ])
    kw = {"num_workers": 0, "segment_cuts": 12, "jsonl_shard_cuts": 5, "cuts_per_epoch": 48, **kw}
    cfg = DataConfig(train_data_config=str(config), **kw)
    cfg.sampler.max_duration = 6.0
    return cfg


def _ids(loader) -> list[list[str]]:
    return [b.cut_ids for b in loader]


@pytest.mark.parametrize("workers", [0, 2])
def test_resumed_sharded_epoch_sees_the_same_batches_as_the_uninterrupted_one(
    tiny_corpus, shar_dir, tmp_path, workers
):
    cfg = _sharded_config(tiny_corpus, shar_dir, tmp_path, num_workers=workers)
    data = build_train_data(cfg, seed=5)
    assert isinstance(data, ShardedTrainData)
    full = _ids(data.loader(epoch=2))
    assert len(full) > 8 and len({c for b in full for c in b}) > 12
    tasks = {t for b in data.loader(epoch=2) for t in b.tasks}
    assert tasks == {"transcribe", "describe"}

    for stop in (1, 5, len(full) - 1):
        first = build_train_data(cfg, seed=5)
        it = iter(first.loader(epoch=2))
        seen = [next(it).cut_ids for _ in range(stop)]
        state = first.state_dict()
        del it
        again = build_train_data(cfg, seed=5)
        again.load_state_dict(state)
        rest = _ids(again.loader(epoch=2, skip_batches=stop))
        assert seen + rest == full, f"resumed after {stop} batches"


def test_a_sharded_resume_needs_the_same_number_of_readers(tiny_corpus, shar_dir, tmp_path):
    data = build_train_data(_sharded_config(tiny_corpus, shar_dir, tmp_path), seed=5)
    next(iter(data.loader(epoch=1)))
    other = build_train_data(_sharded_config(tiny_corpus, shar_dir, tmp_path, num_workers=2),
                             seed=5)
    with pytest.raises(ValueError, match="1 sharded readers .* this run has 2"):
        other.load_state_dict(data.state_dict())


def test_jsonl_sources_stay_on_the_replay_path_unless_sharded_is_asked(training_setup):
    cfg = DataConfig(train_data_config=str(training_setup.corpus.train_data_config),
                     num_workers=0)
    assert isinstance(build_train_data(cfg, seed=1), TrainData)
    cfg.sharded = True
    assert isinstance(build_train_data(cfg, seed=1), ShardedTrainData)


def test_training_on_shar_resumes_mid_epoch_to_the_same_weights(
    training_setup, tiny_corpus, shar_dir, tmp_path
):
    torch.manual_seed(0)
    data_config = write_data_config(tmp_path / "train.yaml", [
        {"shar_dir": str(shar_dir), "task": "transcribe", "weight": 2},
        {"manifest": str(tiny_corpus.cuts), "task": "transcribe", "weight": 1},
    ])

    def config(exp, **kw):
        cfg = training_setup.train_config(exp, save_every_n=3, **kw)
        cfg.data.train_data_config = str(data_config)
        cfg.data.segment_cuts = 10
        cfg.data.jsonl_shard_cuts = 6
        return cfg

    full, part = tmp_path / "full", tmp_path / "part"
    train(config(full, num_steps=8))
    train(config(part, num_steps=3))
    ckpt = load_checkpoint(part / "checkpoint-3.pt")
    assert ckpt["sampler"]["readers"][0]["positions"][0][0] >= 0
    train(config(part, num_steps=8, start_batch=3))
    a, b = load_checkpoint(full / "checkpoint-8.pt"), load_checkpoint(part / "checkpoint-8.pt")
    assert max(float((a["model"][k] - b["model"][k]).abs().max()) for k in a["model"]) <= 1e-6
    assert a["last_cut_ids"] == b["last_cut_ids"]
