"""Read an audio file for a model, or say in one line why it cannot be read.

Every place that takes a user's audio file (``auden transcribe``/``chat``, the pipeline)
reads it here, so a missing, empty, unreadable, NaN-filled or too-short file gets the
same error, naming the file, instead of a chain of backend exceptions or a silent empty
reply::

    >>> samples = read_audio("a.wav")          # 1-D float32 at 16 kHz, first channel
    >>> check_waveform(samples, "a.wav", 16000)  # raises AudioError if unusable
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

# One 25 ms analysis window: the shortest clip any of our fbank extractors turns into a
# feature frame (Lhotse's Fbank fails deep inside torch below it).
MIN_DURATION_S = 0.025


class AudioError(ValueError):
    """Audio that cannot be used, with the file (or clip) named in the message."""


def read_audio(path: str | Path, sampling_rate: int = 16000) -> np.ndarray:
    """The file's first channel at ``sampling_rate`` (resampled if needed), checked.

    Raises :class:`FileNotFoundError` for a missing file and :class:`AudioError` for an
    empty, unreadable, non-finite or too-short one; the message names the file.
    """
    from lhotse import Recording  # lhotse is heavy; only readers of files pay for it

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file '{path}' not found")
    if path.stat().st_size == 0:
        raise AudioError(f"cannot read audio file '{path}': {unreadable_reason(None, path)}")
    try:
        recording = Recording.from_file(path)
        if recording.sampling_rate != sampling_rate:
            recording = recording.resample(sampling_rate)
        samples = recording.load_audio()
    except Exception as e:  # lhotse tries several backends and raises whichever failed last
        raise AudioError(f"cannot read audio file '{path}': {unreadable_reason(e, path)}") from None
    samples = np.asarray(samples[0], dtype=np.float32)
    check_waveform(samples, f"audio file '{path}'", sampling_rate)
    missing = _wav_bytes_missing(path)
    if missing:
        logger.warning(
            "audio file '%s' is truncated: %d bytes that its header announces are missing; "
            "using the %.2f s that are there", path, missing, samples.size / sampling_rate,
        )
    return samples


def check_waveform(
    samples: np.ndarray | torch.Tensor,
    name: str,
    sampling_rate: int,
    *,
    min_duration: float = MIN_DURATION_S,
) -> None:
    """Raise :class:`AudioError` naming ``name`` if ``samples`` cannot give features.

    Non-finite samples (NaN, Inf) are refused rather than zeroed: a decoder fed NaN
    features answers with an empty string and exit status 0, which is silent garbage.
    """
    if torch.is_tensor(samples):
        samples = samples.detach().cpu().numpy()
    samples = np.asarray(samples)
    if samples.size == 0:
        raise AudioError(f"{name}: no audio samples")
    finite = np.isfinite(samples)
    if not finite.all():
        bad = samples.size - int(finite.sum())
        first = int(np.flatnonzero(~finite.reshape(-1))[0])
        raise AudioError(
            f"{name}: {bad} of {samples.size} samples are NaN or Inf "
            f"(the first at {first / sampling_rate:.3f} s); the audio is corrupt"
        )
    num = samples.shape[-1]
    if num < round(min_duration * sampling_rate):
        raise AudioError(
            f"{name}: {1000 * num / sampling_rate:.1f} ms of audio, shorter than the "
            f"minimum of {1000 * min_duration:.0f} ms (one feature frame)"
        )


def _wav_bytes_missing(path: Path) -> int:
    """How many bytes a RIFF/WAVE file lacks by its own header (decoders read what is left)."""
    with open(path, "rb") as f:
        header = f.read(12)
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        return 0
    announced = struct.unpack("<I", header[4:8])[0] + 8
    if announced >= 0xFFFFFFF0:  # streamed writers leave the size unset
        return 0
    return max(0, announced - path.stat().st_size)


def unreadable_reason(e: BaseException | None, path: str | Path) -> str:
    """Why a file could not be read, once: missing, empty, or the first backend's reason
    (Lhotse lists every backend it tried)."""
    path = Path(path)
    if not path.is_file():
        return "file not found"
    if path.stat().st_size == 0:
        return "the file is empty (0 bytes)"
    if e is None:
        return "unknown reason"
    reasons = []
    for line in str(e).splitlines():
        if line.startswith("Exception #"):  # "Exception #0 (<backend>): <class 'X'>: message"
            message = line.rsplit(">: ", 1)[-1].strip()
            message = message.replace(f"Error opening '{path}': ", "").replace(f"{path}: ", "")
            if message:
                reasons.append(message)
    if reasons:
        return f"not a format any audio backend reads ({reasons[0]})"
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
