"""Bad configs, manifests, transcripts and audio through train.py: an error naming the key,
file or cut before anything is trained, or a skip that is logged and counted.
Rows of the bad-input catalogue (``tests/bad_inputs.py``).

The config cases compose the recipe's Hydra config in-process, exactly as ``train.py``
does, and hand it to ``auden.training.train``.
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from bad_inputs import record
from hydra import compose, initialize_config_dir
from lhotse import CutSet
from lhotse.utils import fastcopy
from tinycorpus import write_data_config

from auden.checkpoint import load_checkpoint
from auden.training import register_configs, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RECIPE = Path(__file__).resolve().parents[1] / "egs" / "mini_en"
ENTRY = "train.py"


def _compose(overrides: list[str]):
    register_configs()
    with initialize_config_dir(config_dir=str(RECIPE / "configs"), version_base="1.3"):
        return compose("train", overrides=overrides)


@pytest.mark.parametrize(
    ("case", "override", "named"),
    [
        ("unknown config key", "trainer.lr=0.1", "trainer.lr"),
        ("value of the wrong type", "trainer.num_steps=many", "trainer.num_steps"),
    ],
)
def test_config_errors_name_the_key(case, override, named, training_setup, tmp_path):
    with pytest.raises(Exception) as e:
        train(_compose(training_setup.overrides(tmp_path / "exp") + [override]))
    record(case, ENTRY, "error naming the key, nothing trained", str(e.value).replace("\n", " "))
    assert named in str(e.value) and not (tmp_path / "exp").exists()


def _train_on(training_setup, tmp_path, entries: list[dict], **trainer):
    cfg = training_setup.train_config(tmp_path / "exp", **trainer)
    cfg.data.train_data_config = str(write_data_config(tmp_path / "train.yaml", entries))
    cfg.data.valid_data_config = ""
    return train(cfg)


def test_missing_and_empty_manifests_are_named(training_setup, tmp_path):
    missing = str(tmp_path / "none.jsonl.gz")
    with pytest.raises(FileNotFoundError) as e:
        _train_on(training_setup, tmp_path, [{"manifest": missing, "task": "transcribe"}])
    record("missing manifest", ENTRY, "error naming the manifest", str(e.value))
    assert "none.jsonl.gz" in str(e.value)

    empty = tmp_path / "empty.jsonl.gz"
    CutSet().to_file(empty)
    with pytest.raises(ValueError) as e:
        _train_on(training_setup, tmp_path, [{"manifest": str(empty), "task": "transcribe"}])
    record("empty manifest", ENTRY, "error naming the manifest", str(e.value))
    assert f"manifest '{empty}' is empty (no cuts)" in str(e.value)
    assert not list((tmp_path / "exp").glob("*.pt"))


def test_features_outside_the_recipe_are_named(training_setup, tiny_corpus, tmp_path):
    # a manifest copied from elsewhere whose feature archives are not where it says
    cuts = CutSet.from_file(tiny_corpus.cuts)
    moved = tmp_path / "moved.jsonl.gz"
    elsewhere = tmp_path / "elsewhere"
    CutSet.from_cuts(
        fastcopy(c, features=fastcopy(
            c.features, storage_path=str(elsewhere / Path(c.features.storage_path).name)
        ))
        for c in cuts
    ).to_file(moved)
    with pytest.raises(Exception) as e:
        _train_on(training_setup, tmp_path, [{"manifest": str(moved), "task": "transcribe"}],
                  num_steps=2)
    record("manifest whose features point outside the recipe", ENTRY,
           "error naming the manifest and the missing storage", str(e.value))
    assert "moved.jsonl.gz" in str(e.value) and "elsewhere" in str(e.value)


def test_non_utf8_transcript_is_named(training_setup, tiny_corpus, tmp_path):
    lines = gzip.open(tiny_corpus.cuts, "rt").read().splitlines()
    first = json.loads(lines[0])
    first["supervisions"][0]["text"] = "caf\udce9"  # a latin-1 byte, as a broken export has
    bad = tmp_path / "latin1.jsonl"
    raw = json.dumps(first, ensure_ascii=False).encode("utf-8", "surrogateescape")
    bad.write_bytes(raw + b"\n" + "\n".join(lines[1:]).encode() + b"\n")
    with pytest.raises(Exception) as e:
        _train_on(training_setup, tmp_path, [{"manifest": str(bad), "task": "transcribe"}],
                  num_steps=1)
    record("non-UTF-8 transcript", ENTRY, "error naming the manifest", str(e.value))
    assert "latin1.jsonl" in str(e.value)


def test_empty_prompt_file_is_named(training_setup, tiny_corpus, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n# only a comment\n")
    with pytest.raises(ValueError) as e:
        _train_on(training_setup, tmp_path, [{"manifest": str(tiny_corpus.cuts),
                                              "task": "transcribe",
                                              "prompt_file": str(prompts)}])
    record("empty prompt file", ENTRY, "error naming the file", str(e.value))
    assert "prompts.txt" in str(e.value) and "no prompt" in str(e.value)


def test_bad_cuts_in_training_data_are_skipped_counted_and_named(
    training_setup, own_tiny_corpus, tmp_path, caplog
):
    """Missing audio, NaN audio and empty transcripts in one on-the-fly run of an epoch."""
    torch.manual_seed(0)
    wavs = sorted((own_tiny_corpus.root / "wav").glob("*.wav"))
    wavs[2].unlink()
    samples, sr = sf.read(wavs[3], dtype="float32")
    samples[100:200] = np.nan
    sf.write(wavs[3], samples, sr, subtype="FLOAT")
    cuts = CutSet.from_file(own_tiny_corpus.cuts)
    emptied = cuts[5].id
    cuts = CutSet.from_cuts(
        c.map_supervisions(lambda s: s.transform_text(lambda _: "")) if c.id == emptied else c
        for c in cuts
    )
    manifest = tmp_path / "damaged.jsonl.gz"
    cuts.to_file(manifest)
    cfg = training_setup.train_config(tmp_path / "exp", num_epochs=1, save_every_n=100)
    cfg.data.train_data_config = str(
        write_data_config(tmp_path / "train.yaml", [{"manifest": str(manifest),
                                                     "task": "transcribe"}])
    )
    cfg.data.valid_data_config = ""
    cfg.data.on_the_fly_feats = True
    with caplog.at_level(logging.WARNING):
        train(cfg)
    counters = load_checkpoint(tmp_path / "exp" / "epoch-1.pt")["counters"]
    log = [r.getMessage() for r in caplog.records]
    missing = next((m for m in log if wavs[2].stem in m), "(nothing logged)")
    empty = next((m for m in log if emptied in m), "(nothing logged)")
    nan = next((m for m in log if wavs[3].stem in m), "(nothing logged)")
    record("missing audio file in the training data", ENTRY, "cut skipped, named, counted",
           f"{missing} (skipped_cuts={counters['skipped_cuts']})")
    record("NaN audio in the training data", ENTRY, "cut skipped, named, counted",
           f"{nan} (skipped_cuts={counters['skipped_cuts']}, "
           f"nonfinite_steps={counters['nonfinite_steps']})")
    record("empty transcript (empty target)", ENTRY, "cut dropped by the filter, named, counted",
           empty)
    assert counters["skipped_cuts"] >= 1 and wavs[2].stem in missing
    # the NaN cut costs itself, not the step of the cuts batched with it
    assert "NaN or Inf" in nan and counters["skipped_cuts"] >= 2
    assert counters["nonfinite_steps"] == 0
    assert "empty_target" in empty
