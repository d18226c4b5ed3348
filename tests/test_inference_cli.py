"""`auden transcribe` and `auden chat` on a tiny exported model, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from inference_fixtures import MAX_NEW_TOKENS, export_tiny_model, tone, write_wav

from auden import pipeline
from auden.cli import main as auden_main
from auden.inference.commands import one_line


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return export_tiny_model(tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_wavs")
    return [
        write_wav(root / f"w{i}.wav", tone(0.5 + 0.3 * i, 300 + 90 * i, seed=i)) for i in range(5)
    ]


def test_transcribe_a_list_in_batches_writes_every_file_like_the_pipeline(
    model_dir, wavs, tmp_path, capsys
):
    listing = tmp_path / "files.txt"
    listing.write_text("\n".join(map(str, wavs[2:])) + "\n")
    rc = auden_main(
        [
            "transcribe",
            str(model_dir),
            str(wavs[0]),
            str(wavs[1]),
            "--list",
            str(listing),
            "--batch-size",
            "2",
            "--max-new-tokens",
            str(MAX_NEW_TOKENS),
        ]
    )
    out = capsys.readouterr()
    got = dict(line.split("\t", 1) for line in out.out.splitlines())
    p = pipeline("audio-text-to-text", model=model_dir)
    replies = p(wavs, max_new_tokens=MAX_NEW_TOKENS)
    expected = {str(w): one_line(r[0]["generated_text"]) for w, r in zip(wavs, replies)}
    assert rc == 0 and got == expected
    assert "transcribing" in out.err  # the progress bar


def test_transcribe_jsonl_with_a_task(model_dir, wavs, capsys):
    rc = auden_main(
        [
            "transcribe",
            str(model_dir),
            str(wavs[0]),
            "--jsonl",
            "--task",
            "describe",
            "--max-new-tokens",
            str(MAX_NEW_TOKENS),
        ]
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    p = pipeline("audio-text-to-text", model=model_dir)
    reply = p(wavs[0], task="describe", max_new_tokens=MAX_NEW_TOKENS)[0]["generated_text"]
    assert rc == 0 and rows == [{"path": str(wavs[0]), "text": reply}]


def test_a_bad_file_in_a_list_stops_before_decoding_with_one_line(
    model_dir, wavs, tmp_path, capsys
):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    rc = auden_main(["transcribe", str(model_dir), str(wavs[0]), str(broken)])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert str(broken) in err and "cannot read audio file" in err


def test_chat_streams_the_reply_to_the_terminal(model_dir, wavs):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "auden.cli",
            "chat",
            str(model_dir),
            str(wavs[1]),
            "--prompt",
            "Describe the sound.",
            "--max-new-tokens",
            str(MAX_NEW_TOKENS),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    p = pipeline("audio-text-to-text", model=model_dir)
    reply = p({"audio": wavs[1], "text": "Describe the sound."}, max_new_tokens=MAX_NEW_TOKENS)
    assert run.stdout == reply[0]["generated_text"] + "\n"


def test_chat_with_an_unknown_task_lists_the_known(model_dir, wavs, capsys):
    assert auden_main(["chat", str(model_dir), str(wavs[1]), "--task", "sing"]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'sing'" in err and "['describe', 'transcribe']" in err
