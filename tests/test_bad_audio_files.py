"""A user's bad audio file gets one line naming the file and why, never silent garbage.

Through the real entry point (`auden transcribe`, in-process and once as a subprocess)
on an exported tiny model; and through `generate()` for waveforms handed over in memory.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from tiny_audio_llm import make_tiny_llm, tiny_config, user_turn

from auden.audio.features import build_feature_extractor, extract_padded
from auden.audio.io import AudioError, read_audio
from auden.auto.auto_model import AutoModel
from auden.cli import main as auden_main

SR = 16000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_audio")
    torch.manual_seed(0)
    model = AutoModel.from_config(tiny_config(make_tiny_llm(root / "llm")))
    return model.save_pretrained(root / "export")


def _tone(seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


def _nan_wav(path):
    x = _tone(1.0)
    x[4000:4100] = np.nan
    sf.write(path, x, SR, subtype="FLOAT")


def _inf_wav(path):
    x = _tone(1.0)
    x[8000] = np.inf
    sf.write(path, x, SR, subtype="FLOAT")


def _short_wav(path):
    sf.write(path, _tone(0.005), SR)


def _empty_file(path):
    path.write_bytes(b"")


def _text_file(path):
    path.write_text("this is not audio\n" * 20)


BAD_FILES = {
    # name: (writer, what the one-line error must say besides the file name)
    "nan.wav": (_nan_wav, "100 of 16000 samples are NaN or Inf"),
    "inf.wav": (_inf_wav, "1 of 16000 samples are NaN or Inf"),
    "five_ms.wav": (_short_wav, "5.0 ms of audio, shorter than the minimum of 25 ms"),
    "empty.wav": (_empty_file, "the file is empty (0 bytes)"),
    "text.wav": (_text_file, "cannot read audio file"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_transcribe_refuses_a_bad_file_in_one_line_naming_it(name, model_dir, tmp_path, capsys):
    writer, reason = BAD_FILES[name]
    bad = tmp_path / name
    writer(bad)
    good = tmp_path / "good.wav"
    sf.write(good, _tone(1.0), SR)
    assert auden_main(["transcribe", str(model_dir), str(good), str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # nothing half-answered for the good file either
    assert len(err.strip().splitlines()) == 1, err
    assert str(bad) in err and reason in err


def test_missing_file_is_named(model_dir, tmp_path, capsys):
    assert auden_main(["transcribe", str(model_dir), str(tmp_path / "no_such.wav")]) == 2
    assert "audio file '" in capsys.readouterr().err


def test_text_file_error_is_one_line_from_the_command_line(model_dir, tmp_path):
    bad = tmp_path / "notes.wav"
    _text_file(bad)
    run = subprocess.run(
        [sys.executable, "-m", "auden.cli", "transcribe", str(model_dir), str(bad)],
        capture_output=True, text=True,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        line for line in run.stderr.strip().splitlines() if str(bad) in line
    ], run.stderr  # one line, no traceback, no backend chain
    assert "Traceback" not in run.stderr


def test_silent_and_resampled_files_are_answered(model_dir, tmp_path, capsys):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, dtype=np.float32), SR)
    at_8k = tmp_path / "8k.wav"
    sf.write(at_8k, _tone(1.0, 8000), 8000)
    assert auden_main(["transcribe", str(model_dir), str(silent), str(at_8k),
                       "--max-new-tokens", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(silent), str(at_8k)]


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
    with pytest.raises(AudioError, match="my-clip: 5 of 16000 samples are NaN or Inf"):
        model.generate([bad], [[user_turn()]], clip_names=["my-clip"], max_new_tokens=2)


def test_read_audio_gives_16k_mono_from_a_44k_stereo_file(tmp_path):
    path = tmp_path / "stereo.flac"
    stereo = np.stack([_tone(0.5, 44100), np.zeros(22050, np.float32)], axis=1)
    sf.write(path, stereo, 44100)
    samples = read_audio(path)
    assert samples.dtype == np.float32 and samples.shape == (8000,)
    assert np.abs(samples).max() > 0.2  # the first channel, not the silent second one
