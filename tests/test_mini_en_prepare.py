"""egs/mini_en/prepare.sh, as a user runs it: a small corpus built once, then re-runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
import torch
from lhotse import CutSet, load_manifest

from auden.data.config import load_data_config
from auden.data.tasks import get_task

REPO = Path(__file__).resolve().parents[1]
PREPARE = REPO / "egs" / "mini_en" / "prepare.sh"
sys.path.insert(0, str(REPO / "egs" / "mini_en" / "local"))
from corpus import description_attributes, split_voices  # noqa: E402

SPLITS = ("train", "dev", "test-seen", "test-unseen")
TASKS = ("transcribe", "continue", "describe", "answer", "instruct")
PROMPTED = ("transcribe", "continue", "describe", "answer")  # instruct: a prompt per cut
NUM_UTTS = 200


def prepare(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = ["bash", str(PREPARE), "--num-utts", str(NUM_UTTS), "--data-dir", str(root / "data"),
           "--config-dir", str(root / "configs"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def stages_run(log: str) -> list[int]:
    """Stages that ran (their banner line), not those skipped as done."""
    return [int(line.split("Stage ")[1][0]) for line in log.splitlines()
            if "(prepare.sh) Stage " in line and line.rstrip().endswith(
                ("audio", "manifests", "features", "tiny LLM", "configs"))]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, float, str]:
    root = tmp_path_factory.mktemp("mini_en")
    start = time.monotonic()
    out = prepare(root)
    elapsed = time.monotonic() - start
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return root, elapsed, out.stdout


def cuts_of(root: Path, split: str, task: str | None = None) -> CutSet:
    name = f"mini_en_cuts_{split}" + (f"_{task}" if task else "")
    return CutSet.from_file(root / "data" / "fbank" / f"{name}.jsonl.gz")


def test_prepare_builds_a_200_utterance_corpus_in_under_two_minutes(corpus):
    _, elapsed, log = corpus
    assert stages_run(log) == [0, 1, 2, 3, 4]
    assert elapsed < 120, f"prepare.sh --num-utts {NUM_UTTS} took {elapsed:.0f} s"


def test_manifests_are_written_for_every_split(corpus):
    root, _, _ = corpus
    total = 0
    for split in SPLITS:
        recs = load_manifest(root / f"data/manifests/mini_en_recordings_{split}.jsonl.gz")
        sups = load_manifest(root / f"data/manifests/mini_en_supervisions_{split}.jsonl.gz")
        assert len(recs) == len(sups) > 0
        total += len(recs)
    assert total == NUM_UTTS


def test_audio_is_16khz_mono_and_short(corpus):
    root, _, _ = corpus
    for cut in cuts_of(root, "dev"):
        info = sf.info(cut.recording.sources[0].source)
        assert (info.samplerate, info.channels) == (16000, 1)
        assert 0.3 < cut.duration < 4.0


def test_every_split_has_every_task_and_each_target_is_readable(corpus):
    root, _, _ = corpus
    for split in SPLITS:
        for task_name in TASKS:
            cuts = cuts_of(root, split, task_name)
            assert len(cuts) > 0, f"{split} has no {task_name} cuts"
            task = get_task(task_name)
            assert all(task.target(cut).strip() for cut in cuts)


def test_targets_follow_the_corpus_rules(corpus):
    root, _, _ = corpus
    for cut in cuts_of(root, "train", "answer"):
        sup = cut.supervisions[0]
        if sup.text == "what is two plus three":
            assert sup.custom["answer"] == "five"
    for cut in cuts_of(root, "train", "describe"):
        sup = cut.supervisions[0]
        attributes = description_attributes(sup.custom["description"])
        if sup.custom["kind"] == "event":
            assert sup.text == "" and attributes["event"] == sup.custom["event"]
        else:
            assert f"saying '{sup.text}'" in sup.custom["description"]
            assert [attributes[k] for k in ("speed", "pitch", "gender")] == [
                sup.custom["speed"], sup.custom["pitch"], sup.custom["gender"]]
    replies = {c.supervisions[0].text: c.supervisions[0].custom["reply"]
               for c in cuts_of(root, "train", "continue")}
    assert replies.get("how are you", "i am fine thank you") == "i am fine thank you"


def test_every_cut_has_fbank_whose_frame_count_matches_its_duration(corpus):
    root, _, _ = corpus
    for split in SPLITS:
        for cut in cuts_of(root, split):
            feats = cut.load_features()
            assert feats.shape == (cut.num_frames, 80), cut.id
            assert abs(cut.num_frames - round(cut.duration * 100)) <= 1, cut.id


def test_test_unseen_shares_no_voice_with_train(corpus):
    root, _, _ = corpus

    def voices(split: str) -> set[str]:
        return {c.supervisions[0].custom["voice"] for c in cuts_of(root, split, "transcribe")}

    train, unseen, seen = voices("train"), voices("test-unseen"), voices("test-seen")
    assert unseen and not unseen & train
    assert seen <= train
    all_seen, all_unseen = split_voices()
    assert unseen <= {v.name for v in all_unseen}
    # Held-out pairings only: each accent and variant of test-unseen is heard in training.
    assert {v.split("+")[0] for v in unseen} <= {v.accent for v in all_seen}
    assert {v.split("+")[1] for v in unseen} <= {v.variant for v in all_seen}


def test_llm_folder_loads_like_a_real_qwen2(corpus):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, _, _ = corpus
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(root / "data" / "llm")
    model = AutoModelForCausalLM.from_pretrained(root / "data" / "llm")
    assert model.config.model_type == "qwen2"
    assert "<|AUDIO|>" in tokenizer.get_vocab()
    messages = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": "red cat"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert "<|AUDIO|>" in text and "red cat" in text
    # Corpus words are whole tokens: short targets make a fast demo.
    assert len(tokenizer("what is three plus four")["input_ids"]) == 5
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    assert model(ids).logits.shape == (1, ids.shape[1], len(tokenizer))


def test_data_configs_load_with_auden(corpus):
    root, _, _ = corpus
    train = load_data_config(root / "configs" / "train_data.yaml")
    assert sorted(s.task for s in train) == sorted(TASKS)
    for source in train:
        if source.task in PROMPTED:
            assert source.prompt_file is not None and source.prompt_file.is_file()
        else:
            assert source.prompt_file is None
    assert len(load_data_config(root / "configs" / "valid_data.yaml")) == len(TASKS)
    # Text pretraining draws the same clips, answers and instructions more often.
    text = {s.task: s for s in load_data_config(root / "configs" / "llm_train_data.yaml")}
    mixed = {s.task: s for s in train}
    assert set(text) == set(mixed)
    assert text["answer"].weight > mixed["answer"].weight
    assert text["transcribe"].weight < mixed["transcribe"].weight
    assert all(text[t].manifest == mixed[t].manifest for t in text)
    test = load_data_config(root / "configs" / "test_data.yaml")
    assert {s.name for s in test} == {f"{split}_{t}" for split in ("test-seen", "test-unseen")
                                      for t in TASKS}
    for task in PROMPTED:
        prompts = (REPO / "egs/mini_en/configs/prompts" / f"{task}.txt").read_text().splitlines()
        assert len([p for p in prompts if p.strip()]) >= 3


def test_unknown_option_exits_non_zero_naming_it(corpus):
    root, _, _ = corpus
    out = prepare(root, "--num-epochs", "3")
    assert out.returncode != 0 and "--num-epochs" in out.stderr


def test_missing_espeak_ng_says_how_to_install_it(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            target = Path(folder) / name
            if not name.startswith("espeak") and not (bin_dir / name).exists() \
                    and os.access(target, os.X_OK) and target.is_file():
                (bin_dir / name).symlink_to(target)
    out = prepare(tmp_path, "--stop-stage", "0", env={**os.environ, "PATH": str(bin_dir)})
    assert out.returncode != 0
    message = out.stdout + out.stderr
    assert "espeak-ng" in message and "apt-get install espeak-ng" in message
    assert not (tmp_path / "data" / ".stage-0.done").exists()


# The tests below re-run stages of the shared corpus; they come last in this file.


def test_rerun_skips_every_finished_stage(corpus):
    root, _, _ = corpus
    cuts_file = root / "data/fbank/mini_en_cuts_train.jsonl.gz"
    before = cuts_file.stat().st_mtime_ns
    out = prepare(root)
    assert out.returncode == 0, out.stderr
    assert stages_run(out.stdout) == []
    assert out.stdout.count("done already") == 5
    assert cuts_file.stat().st_mtime_ns == before


def test_stage_2_alone_is_redone_and_nothing_else(corpus):
    root, _, _ = corpus
    manifest = root / "data/manifests/mini_en_supervisions_train.jsonl.gz"
    cuts_file = root / "data/fbank/mini_en_cuts_train.jsonl.gz"
    manifest_before, cuts_before = manifest.stat().st_mtime_ns, cuts_file.stat().st_mtime_ns
    out = prepare(root, "--stage", "2", "--stop-stage", "2")
    assert out.returncode == 0, out.stderr
    assert stages_run(out.stdout) == [2]
    assert manifest.stat().st_mtime_ns == manifest_before
    assert cuts_file.stat().st_mtime_ns > cuts_before
    assert len(cuts_of(root, "train")) == NUM_UTTS - 30


def test_interrupted_stage_is_redone_on_the_next_run(corpus):
    root, _, _ = corpus
    cmd = ["bash", str(PREPARE), "--num-utts", str(NUM_UTTS), "--data-dir", str(root / "data"),
           "--config-dir", str(root / "configs"), "--stage", "3", "--stop-stage", "3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    for line in proc.stdout:  # wait until stage 3 has started, then kill it mid-way
        if "Stage 3: tokenizer and tiny LLM" in line:
            break
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (root / "data" / ".stage-3.done").exists()

    out = prepare(root)
    assert out.returncode == 0, out.stderr
    assert stages_run(out.stdout) == [3]
    assert (root / "data" / ".stage-3.done").exists()
    assert (root / "data" / "llm" / "config.json").is_file()
