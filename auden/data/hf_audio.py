"""Decode the stored form of a Hugging Face Audio value with soundfile, and encode flac.

`datasets` stores an Audio column as ``{"bytes": <encoded file>, "path": <name>}``; the
bytes may be absent when the dataset only points at files. Decoding here needs neither
torchcodec nor torchaudio: soundfile reads wav, flac, ogg/opus and mp3.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf


class AudioDecodeError(ValueError):
    """An audio value that cannot be turned into samples."""


def decode_audio(value, base_dir: Path, sampling_rate: int | None) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate from an Audio value.

    ``value`` is ``{"bytes", "path"}`` (the stored form), ``{"array", "sampling_rate"}``
    (the decoded form) or a path string; a relative path is looked up under ``base_dir``.
    ``sampling_rate`` resamples when set and different from the clip's own rate.
    """
    samples, rate = _decode(value, base_dir)
    if samples.ndim == 2:  # (samples, channels) -> mono
        samples = samples.mean(axis=1)
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if samples.size == 0:
        raise AudioDecodeError("the audio is empty")
    if sampling_rate and rate != sampling_rate:
        import librosa

        samples = librosa.resample(samples, orig_sr=rate, target_sr=sampling_rate)
        rate = sampling_rate
    return samples, int(rate)


def encode_flac(samples: np.ndarray, sampling_rate: int) -> bytes:
    """16-bit flac bytes of mono float samples in [-1, 1]."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(samples, -1.0, 1.0), sampling_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _decode(value, base_dir: Path) -> tuple[np.ndarray, int]:
    if value is None:
        raise AudioDecodeError("the audio column is empty")
    if isinstance(value, dict) and value.get("array") is not None:
        if not value.get("sampling_rate"):
            raise AudioDecodeError("a decoded audio value has no sampling_rate")
        return np.asarray(value["array"], dtype=np.float32), int(value["sampling_rate"])
    if isinstance(value, dict) and value.get("bytes"):
        return _read(io.BytesIO(value["bytes"]), value.get("path") or "<bytes>")
    path = value.get("path") if isinstance(value, dict) else value
    if not isinstance(path, str) or not path:
        raise AudioDecodeError(f"not an audio value: {type(value).__name__}")
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = base_dir / candidate
    if not candidate.is_file():
        raise AudioDecodeError(f"audio file not found: {path} (also looked under {base_dir})")
    return _read(candidate, str(candidate))


def _read(file, name: str) -> tuple[np.ndarray, int]:
    try:
        samples, rate = sf.read(file, dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioDecodeError(f"cannot decode audio '{name}': {e}") from e
    return samples, rate
