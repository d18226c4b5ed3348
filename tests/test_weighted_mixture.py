"""Task shares follow the data config's weights through the training sampler, whatever the sources' sizes."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest
from tinycorpus import write_data_config

from auden.data.config import DataConfig, load_data_config
from auden.data.loader import TrainData
from auden.data.mixing import WeightedMixture, count_cuts

# sources of 6, 24 and 240 cuts: the biggest has the smallest weight
WEIGHTS = {"transcribe": 0.5, "answer": 0.3, "describe": 0.2}
COPIES = {"transcribe": 0, "answer": 1, "describe": 10}  # 0: the first 6 cuts only


def _manifest(corpus, task: str, out) -> None:
    with gzip.open(corpus.cuts, "rt") as f:
        cuts = [json.loads(line) for line in f]
    if COPIES[task] == 0:
        rows = cuts[:6]
    else:  # the same audio under new ids: a bigger source
        rows = [{**c, "id": f"{c['id']}-{task}{k}"} for k in range(COPIES[task]) for c in cuts]
    with gzip.open(out, "wt") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)


@pytest.fixture
def uneven_config(tiny_corpus, tmp_path):
    entries = []
    for task, weight in WEIGHTS.items():
        manifest = tmp_path / f"{task}_cuts.jsonl.gz"
        _manifest(tiny_corpus, task, manifest)
        entries.append({"manifest": str(manifest), "task": task, "weight": weight})
    return write_data_config(tmp_path / "uneven.yaml", entries)


def _data_cfg(config, cuts_per_epoch: int = 0) -> DataConfig:
    cfg = DataConfig(train_data_config=str(config), num_workers=0, cuts_per_epoch=cuts_per_epoch)
    cfg.sampler.max_duration = 20.0
    # 24 distinct durations here: 10 buckets would cut them into buckets of unequal
    # duration (a bias of the tiny corpus, not of the mixture); real corpora do not have it
    cfg.sampler.num_buckets = 4
    cfg.augment.spec_augment = False
    return cfg


def _assert_shares_follow_weights(tasks: Counter) -> None:
    total = sum(tasks.values())
    assert total >= 1000
    for task, weight in WEIGHTS.items():
        share = tasks[task] / total
        assert abs(share - weight) <= 0.05, (task, round(share, 3), weight, dict(tasks))


def test_sources_of_6_24_and_240_cuts_are_counted_without_parsing(uneven_config):
    sizes = [count_cuts(s.manifest) for s in load_data_config(uneven_config)]
    assert sizes == [6, 24, 240]


def test_first_1000_cuts_through_the_training_sampler_follow_the_weights(uneven_config):
    """Step-bounded training: the first batches of a long epoch."""
    data = TrainData(_data_cfg(uneven_config, cuts_per_epoch=5000), seed=7)
    tasks: Counter = Counter()
    for batch in data.loader(epoch=1):
        tasks.update(batch.tasks)
        if sum(tasks.values()) >= 1000:
            break
    _assert_shares_follow_weights(tasks)


def test_whole_epochs_through_the_training_sampler_follow_the_weights(uneven_config):
    """Epoch-based training: an epoch is the sources' total (270 cuts), drawn by weight."""
    data = TrainData(_data_cfg(uneven_config), seed=3)
    tasks: Counter = Counter()
    epochs = []
    for epoch in (1, 2, 3, 4):
        batches = list(data.loader(epoch=epoch))
        epochs.append([c.id for batch in batches for c in batch.cuts])
        assert len(epochs[-1]) == 270
        for batch in batches:
            tasks.update(batch.tasks)
    assert epochs[0] != epochs[1]  # a new draw every epoch
    _assert_shares_follow_weights(tasks)


def test_an_epoch_is_drawn_again_exactly_for_resume(uneven_config):
    sources = load_data_config(uneven_config)
    first = WeightedMixture.from_sources(sources, seed=5)
    again = WeightedMixture.from_sources(sources, seed=5)
    for mixture in (first, again):
        mixture.set_epoch(2)
    assert [c.id for c in first] == [c.id for c in again]
    first.set_epoch(3)
    assert [c.id for c in first] != [c.id for c in again]
