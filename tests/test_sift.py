"""auden sift: LLM-written instruct targets (SIFT data) from transcripts and voice metadata."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from lhotse import load_manifest
from recipe_fixtures import copy_recipe
from sift_fixtures import EXPECTED_METADATA, RAW_METADATA, make_bigram_llm, sift_corpus
from tiny_audio_llm import TEXTS, make_tiny_llm
from tiny_training import MICRO_ZIPFORMER

from auden.data.config import load_data_config
from auden.data.dataset import user_message
from auden.data.sift.generate import ChatWriter, Request
from auden.data.sift.metadata import (
    MetadataMapping,
    MetadataNormalizer,
    count_syllables,
    metadata_block,
)
from auden.data.sift.modes import DESCRIBE_VOICE_PROMPTS, MODES
from auden.data.sift.options import SamplingConfig, SiftOptions
from auden.data.sift.run import make_sift
from auden.data.sift.screen import screen
from auden.data.tasks import get_task

REPLY = "that sounds lovely to me"
BRANCHES = ["that sounds lovely", "this feels great", "how nice", "oh really"]


@pytest.fixture(scope="module")
def corpus(tiny_corpus, tmp_path_factory):
    return sift_corpus(tiny_corpus, tmp_path_factory.mktemp("sift_corpus"))


@pytest.fixture(scope="module")
def llms(tmp_path_factory):
    root = tmp_path_factory.mktemp("sift_llms")
    return {
        "reply": make_bigram_llm(root / "reply", [REPLY]),
        "branching": make_bigram_llm(root / "branching", BRANCHES),
        "leaky": make_bigram_llm(root / "leaky", ["ok <meta> sad"]),
        "empty": make_bigram_llm(root / "empty", [""]),
        "endless": make_bigram_llm(root / "endless", ["on and"], end=False),
    }


def expected_metadata(cut) -> dict[str, str]:
    """EXPECTED_METADATA, with the pace of cuts without a rate from words / duration."""
    i = int(cut.id.split("-")[1])  # tiny-0005-...: the 6th cut
    meta = dict(EXPECTED_METADATA[i % len(EXPECTED_METADATA)])
    sup = cut.supervisions[0]
    if "speaking_rate" not in RAW_METADATA[i % len(RAW_METADATA)] and sup.text:
        rate = count_syllables(sup.text) / sup.duration
        meta["pace"] = "slow" if rate < 6 else "fast" if rate > 9 else "normal"
    return meta


def read_lines(path) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


# ---- metadata ----


def test_metadata_block_holds_exactly_the_normalised_fields_present(corpus):
    normalize = MetadataNormalizer()
    for cut in load_manifest(corpus):
        meta = normalize(cut)
        assert meta == expected_metadata(cut), cut.id
        block = metadata_block(meta, cut.supervisions[0].text)
        inside = block[len("<meta>") : block.index("</meta>")]
        keys = [kv.split(": ")[0] for kv in inside.split(", ")] if inside else []
        assert sorted(keys) == sorted(meta), block
    assert normalize.unmapped["emotion=bored"] == 2  # cuts 2 and 8, left out and counted


def test_a_recipe_mapping_names_its_own_fields_and_labels(tmp_path, corpus):
    mapping_file = tmp_path / "mapping.yaml"
    mapping_file.write_text(
        "emotion: {field: custom.mood, values: {meh: neutral}}\nage: {field: custom.years}\n"
    )
    cut = next(iter(load_manifest(corpus)))
    sup = cut.supervisions[0]
    sup.custom = {"mood": "meh", "years": 67, "speaking_rate": 7}
    meta = MetadataNormalizer(MetadataMapping.from_yaml(mapping_file))(cut)
    assert meta == {"age": "senior", "emotion": "neutral", "pace": "normal"}

    mapping_file.write_text("mood: {field: custom.mood}\n")
    with pytest.raises(ValueError, match="unknown field 'mood'"):
        MetadataMapping.from_yaml(mapping_file)
    mapping_file.write_text("emotion: {values: {meh: bored}}\n")
    with pytest.raises(ValueError, match="not among"):
        MetadataMapping.from_yaml(mapping_file)


def test_screen_names_the_reason_for_each_bad_output():
    ok = dict(finished=True, transcript="the cat sat", max_words=10)
    assert screen("How lovely, tell me more!", **ok) is None
    assert screen("   ", **ok) == "empty"
    assert screen("Sounds like", **ok, prefix="Sounds like") == "empty"
    assert screen("fine words", **{**ok, "finished": False}) == "too_long"
    assert screen("one two three four five six seven eight nine ten eleven", **ok) == "too_long"
    assert screen("Sure. <meta>emotion: sad</meta>", **ok) == "leaked_tags"
    assert screen("I hear that gender: female is", **ok) == "leaked_tags"
    assert screen('"The cat sat."', **ok) == "repeats_transcript"
    assert screen('Sounds like "the cat sat".', **ok, may_repeat_transcript=True) is None


# ---- generation ----


def test_a_cuts_sample_depends_on_its_seed_not_on_its_batch(llms):
    writer = ChatWriter.from_pretrained(llms["branching"], SamplingConfig(), device="cpu")
    requests = [Request("Be kind.", "hello " * (i % 4), seed=i) for i in range(12)]
    batched = writer.generate(requests)
    assert batched == [writer.generate([r])[0] for r in requests]
    assert len({g.text for g in batched}) > 1  # the seeds do pick different branches
    assert {g.text for g in batched} <= set(BRANCHES)


# ---- the tool ----


def test_every_mode_writes_a_target_for_every_kept_cut(corpus, llms, tmp_path):
    out = tmp_path / "sift_cuts.jsonl.gz"
    config = tmp_path / "sift.yaml"
    result = make_sift(corpus, out, llms["reply"], data_config=config, progress=False)
    inputs = list(load_manifest(corpus))
    with_text = [c for c in inputs if c.supervisions[0].text]
    with_meta = [c for c in with_text if expected_metadata(c)]
    assert result.kept == {
        "sift_s": len(with_text),
        "sift_ssp": len(with_meta),
        "sit_ssp": len(with_meta),
    }
    assert len(with_meta) == len(with_text)  # pace, from words and duration, is always there
    assert result.dropped == {"no_text": 3}

    cuts = {c.id: c for c in load_manifest(out)}
    assert len(cuts) == sum(result.kept.values())
    for cut in inputs:
        for mode in MODES:
            kept = cut in with_text and (mode == "sift_s" or cut in with_meta)
            assert (f"{cut.id}-{mode}" in cuts) == kept, (cut.id, mode)
    for out_cut in cuts.values():
        custom = out_cut.supervisions[0].custom
        source_id, mode = out_cut.id.rsplit("-", 1)
        assert custom["sift_mode"] == mode
        source = next(c for c in inputs if c.id == source_id)
        assert custom["sift_metadata"] == expected_metadata(source)
        assert out_cut.recording.id == source.recording.id  # the same audio
        if mode == "sit_ssp":
            assert custom["response"] == f"Sounds like {REPLY}"
            assert custom["instruction"] in DESCRIBE_VOICE_PROMPTS
        else:
            assert custom["response"] == REPLY
            assert custom["instruction"] == ""  # the audio is the whole user turn

    (source,) = load_data_config(config)
    assert (source.manifest, source.task) == (out.resolve(), "instruct")
    instruct = get_task("instruct")
    some = cuts[f"{with_meta[0].id}-sift_ssp"]
    assert instruct.target(some) == REPLY
    assert user_message(instruct.instruction(some)) == {
        "role": "user",
        "content": [{"type": "audio"}],
    }


@pytest.mark.parametrize(
    "llm, reason",
    [("leaky", "leaked_tags"), ("empty", "empty"), ("endless", "too_long")],
)
def test_bad_outputs_are_dropped_and_counted_by_reason(corpus, llms, tmp_path, llm, reason):
    out = tmp_path / "sift_cuts.jsonl.gz"
    result = make_sift(
        corpus,
        out,
        llms[llm],
        SamplingConfig(max_new_tokens=12),
        SiftOptions(modes=("sift_s",)),
        progress=False,
    )
    assert result.kept == {"sift_s": 0}
    assert result.dropped == {reason: 11, "no_text": 1}
    assert read_lines(out) == []


def test_rerunning_reproduces_the_same_file(corpus, llms, tmp_path):
    a, b = tmp_path / "a" / "cuts.jsonl.gz", tmp_path / "b" / "cuts.jsonl.gz"
    options = SiftOptions(batch_size=4, part_size=5)
    for out in (a, b):
        make_sift(corpus, out, llms["branching"], options=options, progress=False)
    assert a.read_bytes() == b.read_bytes()
    responses = {line["supervisions"][0]["custom"]["response"] for line in read_lines(a)}
    assert len(responses) > 2  # sampled, not one fixed reply
    other = tmp_path / "c" / "cuts.jsonl.gz"
    make_sift(corpus, other, llms["branching"], options=SiftOptions(seed=1), progress=False)
    assert read_lines(other) != read_lines(a)


def test_a_killed_run_resumes_and_writes_the_uninterrupted_file(corpus, llms, tmp_path):
    args = ["--llm", str(llms["branching"]), "--part-size", "2", "--batch-size", "2"]
    whole = tmp_path / "whole" / "cuts.jsonl.gz"
    options = SiftOptions(batch_size=2, part_size=2)
    make_sift(corpus, whole, llms["branching"], options=options, progress=False)

    out = tmp_path / "killed" / "cuts.jsonl.gz"
    parts = out.with_name("cuts.parts")
    command = [sys.executable, "-m", "auden.cli", "sift", str(corpus), str(out), *args]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 900  # model loading alone takes minutes on a crowded machine
    while not list(parts.glob("stats.*.json")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(parts.glob("stats.*.json")))
    assert 1 <= done < 6, f"killed after {done} of 6 parts"
    assert not out.exists()

    resumed = subprocess.run(command + ["--no-progress"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"6 parts of 2, {6 - done} to do" in resumed.stderr
    resumed_lines, whole_lines = read_lines(out), read_lines(whole)
    assert len(resumed_lines) == len(whole_lines)
    for got, want in zip(resumed_lines, whole_lines):
        assert got == want
    assert out.read_bytes() == whole.read_bytes()
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["input_cuts"] == 12 and summary["kept"]["sift_s"] == 11

    with pytest.raises(ValueError, match=r"different \['options'\]"):
        make_sift(corpus, out, llms["branching"], options=SiftOptions(seed=3), progress=False)


# ---- end to end: a SIFT-made instruct source trains ----


def test_an_instruct_source_made_by_sift_trains_a_few_steps(corpus, llms, tmp_path):
    """`auden sift` on a corpus, then the multitask recipe's train.py on the data config it
    wrote: a tiny Zipformer + tiny Qwen2 with LoRA, 3 steps on instruct targets only."""
    data_config = tmp_path / "sift" / "cuts.yaml"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sift = subprocess.run(
        [sys.executable, "-m", "auden.cli", "sift", str(corpus), str(tmp_path / "sift" / "cuts.jsonl.gz"),
         "--llm", str(llms["branching"]), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert sift.returncode == 0, sift.stderr[-3000:]
    assert json.loads(sift.stdout.splitlines()[-1])["data_config"] == str(data_config)

    recipe = copy_recipe("multitask", tmp_path)
    llm = make_tiny_llm(tmp_path / "llm", texts=TEXTS + BRANCHES)
    zipformer = tmp_path / "micro_zipformer.json"
    zipformer.write_text(json.dumps(MICRO_ZIPFORMER))
    exp = tmp_path / "exp"
    proc = subprocess.run(
        [sys.executable, "train.py", f"exp_dir={exp}",
         f"data.train_data_config={data_config}", f"data.valid_data_config={data_config}",
         f"model.llm.pretrained_model={llm}", "model.llm.dtype=float32",
         "model.llm.lora.r=4", "model.llm.lora.alpha=8", f"model.audio_encoder.config={zipformer}",
         "data.num_workers=0", "data.sampler.max_duration=4", "data.sampler.num_buckets=2",
         "trainer.num_steps=3", "trainer.dtype=float32", "trainer.save_every_n=3",
         "trainer.valid_interval=3", "trainer.log_interval=1", "trainer.scheduler.warmup_batches=1"],
        cwd=recipe, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    checkpoint = torch.load(exp / "checkpoint-3.pt", weights_only=True)
    assert checkpoint["batch_idx_train"] == 3
    assert checkpoint["config"]["data"]["train_data_config"] == str(data_config)
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values())
