"""Feature extractors: the one place that says which fbank a model's features are.

Zipformer encoders read 80-bin Kaldi-style fbank at 100 frames/s (Lhotse ``Fbank``);
Whisper encoders read Whisper's log-mel (Lhotse ``WhisperFbank``, 80 or 128 bins).
Precomputed features (``tools/compute_fbank.py``), on-the-fly features and
``generate()`` from raw waveforms all build their extractor here, so they agree.

    >>> extractor = build_feature_extractor("fbank", num_mel_bins=80)
    >>> extractor.frame_shift
    0.01
"""

from __future__ import annotations

from typing import Literal

from lhotse import Fbank, FbankConfig, WhisperFbank, WhisperFbankConfig
from lhotse.features.base import FeatureExtractor

FeatureKind = Literal["fbank", "whisper_fbank"]
FEATURE_KINDS: tuple[str, ...] = ("fbank", "whisper_fbank")


def build_feature_extractor(kind: FeatureKind = "fbank", num_mel_bins: int = 80) -> FeatureExtractor:
    """Return the Lhotse extractor for ``kind`` ("fbank" or "whisper_fbank")."""
    if num_mel_bins <= 0:
        raise ValueError(f"num_mel_bins must be positive, got {num_mel_bins}")
    if kind == "fbank":
        return Fbank(FbankConfig(num_filters=num_mel_bins))
    if kind == "whisper_fbank":
        if num_mel_bins not in (80, 128):
            raise ValueError(f"whisper_fbank has 80 or 128 mel bins, got {num_mel_bins}")
        return WhisperFbank(WhisperFbankConfig(num_filters=num_mel_bins))
    raise ValueError(f"unknown feature kind '{kind}'; known kinds: {list(FEATURE_KINDS)}")
