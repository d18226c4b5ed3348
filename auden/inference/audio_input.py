"""Read what a user hands the pipeline as audio into one 16 kHz mono waveform.

A path (any format soundfile / Lhotse reads), the bytes of such a file, or a 1-D array
with its ``sampling_rate``; anything else at any rate is resampled to 16 kHz. URLs are
refused unless the caller opts in, so a served model never fetches what a client names::

    wave = read_audio("a.flac")                             # torch.float32 [N]
    wave = read_audio(samples, sampling_rate=8000)          # resampled
"""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

import numpy as np
import soundfile
import torch
from lhotse.augmentation import Resample

from auden.audio.io import AudioError, check_waveform
from auden.audio.io import read_audio as read_audio_file

SAMPLING_RATE = 16000


class AudioInputError(AudioError):
    """An input that cannot be used as audio; the message names the input."""


def read_audio(
    audio: str | Path | bytes | np.ndarray | torch.Tensor,
    *,
    sampling_rate: int | None = None,
    name: str | None = None,
    allow_urls: bool = False,
) -> torch.Tensor:
    """The input's first channel at 16 kHz as a 1-D float32 tensor (never empty)."""
    name = name or _describe(audio)
    if isinstance(audio, (bytes, bytearray, memoryview)):
        samples, rate = _decode_bytes(bytes(audio), name)
    elif isinstance(audio, (str, Path)):
        if _is_url(str(audio)):
            samples, rate = _decode_bytes(_fetch(str(audio), name, allow_urls), name)
        else:
            samples, rate = _read_file(Path(audio), name)
    elif isinstance(audio, (np.ndarray, torch.Tensor)):
        if sampling_rate is None:
            raise AudioInputError(f"{name}: an array needs its 'sampling_rate'")
        samples = audio.detach().cpu().numpy() if torch.is_tensor(audio) else np.asarray(audio)
        if samples.ndim == 2 and 1 in samples.shape:
            samples = samples.reshape(-1)
        if samples.ndim != 1:
            raise AudioInputError(f"{name}: expected a 1-D (mono) array, got shape {samples.shape}")
        samples, rate = samples.astype(np.float32), int(sampling_rate)
    else:
        raise AudioInputError(
            f"{name}: audio must be a path, bytes or a 1-D array, got {type(audio).__name__}"
        )
    if samples.size == 0:
        raise AudioInputError(f"{name}: the audio is empty (0 samples)")
    if rate <= 0:
        raise AudioInputError(f"{name}: sampling_rate must be positive, got {rate}")
    if rate != SAMPLING_RATE:
        samples = Resample(rate, SAMPLING_RATE)(samples[None, :], rate)[0]
    try:
        check_waveform(samples, name, SAMPLING_RATE)  # NaN / Inf, shorter than one frame
    except AudioError as e:
        raise AudioInputError(str(e)) from None
    return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))


def _read_file(path: Path, name: str) -> tuple[np.ndarray, int]:
    try:  # auden.audio.io names the file and says why (missing, empty, corrupt, too short)
        return read_audio_file(path, SAMPLING_RATE), SAMPLING_RATE
    except (AudioError, FileNotFoundError) as e:
        raise AudioInputError(str(e)) from None


def _decode_bytes(data: bytes, name: str) -> tuple[np.ndarray, int]:
    if not data:
        raise AudioInputError(f"{name}: the audio is empty (0 bytes)")
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioInputError(
            f"{name}: cannot decode {len(data)} bytes as audio (wav, flac, ogg or mp3): {e}"
        ) from e
    return samples[:, 0], rate


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://", "ftp://"))


def _fetch(url: str, name: str, allow_urls: bool) -> bytes:
    if not allow_urls:
        raise AudioInputError(
            f"{name}: audio URLs are refused; download the file first or pass allow_urls=True"
        )
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - opted in
        return response.read()


def _describe(audio) -> str:
    if isinstance(audio, (str, Path)):
        return f"audio '{audio}'"
    if isinstance(audio, (bytes, bytearray, memoryview)):
        return f"audio bytes ({len(audio)} bytes)"
    return f"audio {type(audio).__name__}"
