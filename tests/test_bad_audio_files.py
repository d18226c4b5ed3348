"""A user's audio file through `auden transcribe`: bad ones get one line naming the file and
why, odd-but-valid ones are answered; never silent garbage. Rows of the bad-input catalogue.

Through the real entry point (``auden.cli.main``, once as a subprocess) on a tiny exported
model; and through ``generate()`` for waveforms handed over in memory.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from bad_inputs import record
from tiny_audio_llm import user_turn

from auden.audio.features import build_feature_extractor, extract_padded
from auden.audio.io import AudioError, read_audio
from auden.auto.auto_model import AutoModel
from auden.cli import main as auden_main

SR = 16000
ENTRY = "auden transcribe"


@pytest.fixture(scope="module")
def model_dir(exported_audio_llm):
    return exported_audio_llm


def _tone(seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


def _with(start: int, stop: int, value: float):
    def write(path):
        x = _tone(1.0)
        x[start:stop] = value
        sf.write(path, x, SR, subtype="FLOAT")

    return write


def _truncated(path):
    sf.write(path, _tone(1.0), SR)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


REFUSED = {
    # case: (file name, writer, what the one-line error says besides the file name)
    "NaN samples": ("nan.wav", _with(4000, 4100, np.nan),
                    "100 of 16000 samples are NaN or Inf"),
    "Inf sample": ("inf.wav", _with(8000, 8001, np.inf), "1 of 16000 samples are NaN or Inf"),
    "5 ms clip": ("five_ms.wav", lambda p: sf.write(p, _tone(0.005), SR),
                  "5.0 ms of audio, shorter than the minimum of 25 ms"),
    "0-byte file": ("empty.wav", lambda p: p.write_bytes(b""), "the file is empty (0 bytes)"),
    "text file named .wav": ("notes.wav", lambda p: p.write_text("not audio\n" * 20),
                             "not a format any audio backend reads (Format not recognised.)"),
    "WAV header only": ("header.wav", lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "),
                        "cannot read audio file"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_transcribe_refuses_a_bad_file_in_one_line_naming_it(case, model_dir, tmp_path, capsys):
    name, writer, reason = REFUSED[case]
    bad = tmp_path / name
    writer(bad)
    good = tmp_path / "good.wav"
    sf.write(good, _tone(1.0), SR)
    code = auden_main(["transcribe", str(model_dir), str(good), str(bad)])
    out, err = capsys.readouterr()
    record(case, ENTRY, "exit 2, one line naming the file and why", f"exit {code}: {err}")
    assert code == 2
    assert out == ""  # nothing half-answered for the good file either
    assert len(err.strip().splitlines()) == 1, err
    assert str(bad) in err and reason in err


def test_missing_file_is_named(model_dir, tmp_path, capsys):
    code = auden_main(["transcribe", str(model_dir), str(tmp_path / "no_such.wav")])
    err = capsys.readouterr().err
    record("missing file", ENTRY, "exit 2, one line naming the file", f"exit {code}: {err}")
    assert code == 2 and "audio file '" in err and "no_such.wav' not found" in err


def test_non_audio_error_is_one_line_from_the_command_line(model_dir, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio\n" * 20)
    run = subprocess.run(
        [sys.executable, "-m", "auden.cli", "transcribe", str(model_dir), str(bad)],
        capture_output=True, text=True,
    )
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr  # no traceback, no log chain
    assert str(bad) in run.stderr and run.stdout == ""


ACCEPTED = {
    # case: (file name, writer)
    "silent clip": ("silent.wav", lambda p: sf.write(p, np.zeros(SR, np.float32), SR)),
    "8 kHz": ("8k.wav", lambda p: sf.write(p, _tone(1.0, 8000), 8000)),
    "44.1 kHz": ("44k.wav", lambda p: sf.write(p, _tone(1.0, 44100), 44100)),
    "24-bit": ("24bit.wav", lambda p: sf.write(p, _tone(1.0), SR, subtype="PCM_24")),
    "stereo": ("stereo.wav", lambda p: sf.write(p, np.stack([_tone(1.0)] * 2, axis=1), SR)),
    "mp3": ("clip.mp3", lambda p: sf.write(p, _tone(1.0), SR, format="MP3")),
    "flac": ("clip.flac", lambda p: sf.write(p, _tone(1.0), SR, format="FLAC")),
    "ogg (vorbis)": ("clip.ogg", lambda p: sf.write(p, _tone(1.0), SR, format="OGG")),
    "truncated wav": ("truncated.wav", _truncated),
}


def test_odd_but_valid_files_are_all_answered(model_dir, tmp_path, capsys, caplog):
    paths = []
    for name, writer in ACCEPTED.values():
        paths.append(tmp_path / name)
        writer(paths[-1])
    with caplog.at_level(logging.WARNING, logger="auden.audio.io"):
        code = auden_main(["transcribe", str(model_dir), *map(str, paths),
                           "--max-new-tokens", "3"])
    lines = capsys.readouterr().out.splitlines()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    for case, path in zip(ACCEPTED, paths):
        said = [w for w in warnings if str(path) in w]
        expected = "answered, with a warning naming the file" if "truncated" in case else "answered"
        observed = f"exit {code}, answered" + (f"; warning: {said[0]}" if said else "")
        record(case, ENTRY, expected, observed)
    assert code == 0
    assert [line.split("\t")[0] for line in lines] == list(map(str, paths))
    truncated = paths[list(ACCEPTED).index("truncated wav")]
    assert [w for w in warnings if "truncated" in w] == [
        w for w in warnings if str(truncated) in w
    ] and any(str(truncated) in w for w in warnings)


@pytest.mark.parametrize("kind", ["fbank", "whisper_fbank"])
def test_features_of_in_memory_waveforms_name_the_clip(kind):
    extractor = build_feature_extractor(kind)
    nan = torch.from_numpy(_tone(0.5))
    nan[10] = float("nan")
    with pytest.raises(AudioError, match="clip-b: 1 of 8000 samples are NaN"):
        extract_padded(extractor, [_tone(0.5), nan], SR, names=["clip-a", "clip-b"])
    with pytest.raises(AudioError, match="waveform 0: 5.0 ms of audio"):
        extract_padded(extractor, [_tone(0.005)], SR)
    feats, lens = extract_padded(extractor, [_tone(0.025)], SR)  # the minimum works
    assert lens.tolist() == [feats.shape[1]] and feats.shape[1] >= 1


def test_generate_names_the_clip_with_nan_samples(model_dir):
    model = AutoModel.from_pretrained(model_dir).eval()
    bad = torch.from_numpy(_tone(1.0))
    bad[:5] = float("inf")
    with pytest.raises(AudioError, match="my-clip: 5 of 16000 samples are NaN or Inf") as e:
        model.generate([bad], [[user_turn()]], clip_names=["my-clip"], max_new_tokens=2)
    record("Inf samples in memory", "AudioLlm.generate", "error naming the clip", str(e.value))


def test_read_audio_gives_16k_mono_from_a_44k_stereo_file(tmp_path):
    path = tmp_path / "stereo.flac"
    stereo = np.stack([_tone(0.5, 44100), np.zeros(22050, np.float32)], axis=1)
    sf.write(path, stereo, 44100)
    samples = read_audio(path)
    assert samples.dtype == np.float32 and samples.shape == (8000,)
    assert np.abs(samples).max() > 0.2  # the first channel, not the silent second one
