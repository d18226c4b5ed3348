"""`auden export` turns a run's checkpoints into a folder; `auden transcribe` uses it."""

import subprocess
import sys

import pytest
import torch
from tiny_audio_llm import make_outputs_input_dependent, make_tiny_llm, tiny_config
from tinycorpus import TASK_PROMPTS

from auden.audio.io import read_audio
from auden.auto.auto_config import config_to_dict
from auden.auto.auto_model import AutoModel
from auden.cli import main as auden_main
from auden.inference.tasks import TaskPrompts


@pytest.fixture(scope="module")
def exp_dir(tmp_path_factory):
    """A run directory with two checkpoints of a tiny AudioLlm, as the trainer writes them."""
    root = tmp_path_factory.mktemp("export")
    llm = make_tiny_llm(root / "llm")
    torch.manual_seed(0)
    config = tiny_config(llm)
    config.llm.frozen = False  # every weight in the checkpoint, so the noise below is kept
    model = AutoModel.from_config(config)
    make_outputs_input_dependent(model)
    config = {"model": config_to_dict(model.config)}
    exp = root / "exp"
    exp.mkdir()
    for step in (2, 4):
        state = {k: v.clone() for k, v in model.trainable_state_dict().items()}
        torch.save(
            {"model": state, "batch_idx_train": step, "epoch": 1, "config": config},
            exp / f"checkpoint-{step}.pt",
        )
    return exp


def test_export_writes_a_folder_that_loads_without_the_run(exp_dir, tmp_path):
    out = tmp_path / "export"
    assert auden_main(["export", str(exp_dir), "--iter", "4", "--avg", "2", "--out", str(out)]) == 0
    assert (exp_dir / "averaged-iter-4-avg-2.pt").is_file()
    assert {"config.json", "model.safetensors"} <= {p.name for p in out.iterdir()}
    model = AutoModel.from_pretrained(out)
    averaged = torch.load(exp_dir / "averaged-iter-4-avg-2.pt", weights_only=True)["model"]
    for name, value in model.trainable_state_dict().items():
        torch.testing.assert_close(value, averaged[name])


def test_transcribe_command_replies_like_generate(exp_dir, tmp_path, tiny_corpus):
    out = tmp_path / "export"
    auden_main(["export", str(exp_dir), "--filename", "checkpoint-4.pt", "--out", str(out)])
    wavs = sorted((tiny_corpus.root / "wav").glob("*.wav"))[:2]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "auden.cli",
            "transcribe",
            str(out),
            *map(str, wavs),
            "--max-new-tokens",
            "6",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = run.stdout.splitlines()
    model = AutoModel.from_pretrained(out).eval()
    user = [
        {
            "role": "user",
            "content": [{"type": "audio"}, {"type": "text", "text": "Transcribe the audio."}],
        }
    ]
    assert len(lines) == len(wavs)
    for wav, line in zip(wavs, lines):
        expected = model.generate([torch.from_numpy(read_audio(wav))], [user], max_new_tokens=6)[0]
        assert expected and line == f"{wav}\t{expected}"


def test_transcribe_names_a_missing_file(exp_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such.wav"):
        read_audio(tmp_path / "no_such.wav")


def test_export_saves_the_tasks_and_prompts_of_the_training_data(exp_dir, tmp_path, tiny_corpus):
    """The run's data config (transcribe + describe, each with a prompt file) -> tasks.json."""
    ckpt = torch.load(exp_dir / "checkpoint-4.pt", weights_only=True)
    ckpt["config"]["data"] = {
        "train_data_config": str(tiny_corpus.train_data_config),
        "filters": {"max_duration": 20.0},  # the longest clip the run trained on
    }
    ckpt["config"]["prompt_file"] = str(tiny_corpus.prompt_files["transcribe"])  # the default
    run = tmp_path / "run"
    run.mkdir()
    torch.save(ckpt, run / "checkpoint-4.pt")
    out = tmp_path / "export"
    auden_main(["export", str(run), "--filename", "checkpoint-4.pt", "--out", str(out)])
    tasks = TaskPrompts.load(out)
    assert tasks.tasks == {
        "transcribe": TASK_PROMPTS["transcribe"],
        "describe": TASK_PROMPTS["describe"],
    }
    assert tasks.default == "transcribe"
    assert tasks.prompt("describe") == TASK_PROMPTS["describe"][0]
    assert tasks.trained_max_seconds == 20.0  # the pipeline warns about longer clips
