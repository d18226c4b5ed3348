"""Feature extractors: the one place that says which fbank a model's features are.

Zipformer encoders read 80-bin Kaldi-style fbank at 100 frames/s (Lhotse ``Fbank``,
computed by its faster subclass :class:`auden.audio.fbank.FastFbank`);
Whisper encoders read Whisper's log-mel (Lhotse ``WhisperFbank``, 80 or 128 bins).
Precomputed features (``tools/compute_fbank.py``), on-the-fly features and
``generate()`` from raw waveforms all build their extractor here, so they agree.

    >>> extractor = build_feature_extractor("fbank", num_mel_bins=80)
    >>> extractor.frame_shift
    0.01
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import torch
from lhotse import FbankConfig, WhisperFbank, WhisperFbankConfig
from lhotse.features.base import FeatureExtractor

from auden.audio.fbank import FastFbank
from auden.audio.io import check_waveform


class FeatureKind(str, Enum):
    """The features a model reads (the ``data.feature`` config key takes these values)."""

    fbank = "fbank"
    whisper_fbank = "whisper_fbank"


FEATURE_KINDS: tuple[str, ...] = tuple(k.value for k in FeatureKind)


@dataclass(frozen=True)
class FeatureSpec:
    """The features a model reads, as it declares them (``model.features``).

    The data side derives its settings from this, or refuses a mismatch naming both.
    """

    kind: str  # a FeatureKind value
    num_mel_bins: int
    pad_to_30s: bool = False  # every clip padded to 30 s (3000 frames), as Whisper expects

    def describe(self) -> str:
        pad = ", padded to 30 s" if self.pad_to_30s else ""
        return f"{self.kind} with {self.num_mel_bins} bins{pad}"

    def check(
        self,
        *,
        kind: FeatureKind | str | None = None,
        num_mel_bins: int | None = None,
        pad_to_30s: bool | None = None,
        where: str = "data",
    ) -> None:
        """Refuse settings (None: not set) that differ from what the model reads.

        The error names both sides, e.g. ``model reads whisper_fbank with 128 bins;
        data.feature is fbank, data.num_mel_bins is 80``.
        """
        wrong = []
        if kind is not None and FeatureKind(kind).value != self.kind:
            wrong.append(f"{where}.feature is {FeatureKind(kind).value}")
        if num_mel_bins is not None and int(num_mel_bins) != self.num_mel_bins:
            wrong.append(f"{where}.num_mel_bins is {num_mel_bins}")
        if pad_to_30s is not None and bool(pad_to_30s) != self.pad_to_30s:
            wrong.append(f"{where}.pad_to_30s is {str(bool(pad_to_30s)).lower()}")
        if wrong:
            raise FeatureMismatchError(
                f"model reads {self.describe()}; {', '.join(wrong)} "
                f"(leave {where}'s feature settings unset to follow the model)"
            )


class FeatureMismatchError(ValueError):
    """Features configured or stored differ from the ones the model reads: a set-up
    error, never skipped like an unreadable cut."""


def build_feature_extractor(
    kind: FeatureKind | str = "fbank", num_mel_bins: int = 80
) -> FeatureExtractor:
    """Return the Lhotse extractor for ``kind`` ("fbank" or "whisper_fbank")."""
    if num_mel_bins <= 0:
        raise ValueError(f"num_mel_bins must be positive, got {num_mel_bins}")
    if kind == "fbank":
        return FastFbank(FbankConfig(num_filters=num_mel_bins))
    if kind == "whisper_fbank":
        if num_mel_bins not in (80, 128):
            raise ValueError(f"whisper_fbank has 80 or 128 mel bins, got {num_mel_bins}")
        return WhisperFbank(WhisperFbankConfig(num_filters=num_mel_bins))
    raise ValueError(f"unknown feature kind '{kind}'; known kinds: {list(FEATURE_KINDS)}")


def extract_padded(
    extractor: FeatureExtractor,
    waveforms: Sequence[np.ndarray | torch.Tensor],
    sampling_rate: int = 16000,
    names: Sequence[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of mono waveforms, right-padded with zeros: ``([B, T, F], lens[B])``.

    This is how ``generate()`` turns raw audio into the batch layout a dataset would give.
    A waveform with NaN/Inf samples or shorter than one feature frame is refused with an
    error naming it (``names[i]``, else ``waveform i``).
    """
    if len(waveforms) == 0:
        raise ValueError("no waveforms to extract features from")
    feats = []
    for i, wav in enumerate(waveforms):
        samples = wav.detach().cpu().numpy() if torch.is_tensor(wav) else np.asarray(wav)
        samples = samples.astype(np.float32)
        if samples.ndim == 2 and samples.shape[0] == 1:
            samples = samples[0]
        name = names[i] if names is not None else f"waveform {i}"
        if samples.ndim != 1 or samples.size == 0:
            raise ValueError(f"{name}: expected a non-empty mono signal, got {samples.shape}")
        check_waveform(samples, name, sampling_rate)
        feats.append(torch.from_numpy(np.asarray(extractor.extract(samples, sampling_rate))))
    lens = torch.tensor([f.shape[0] for f in feats], dtype=torch.int64)
    out = torch.zeros(len(feats), int(lens.max()), feats[0].shape[1], dtype=torch.float32)
    for i, f in enumerate(feats):
        out[i, : f.shape[0]] = f
    return out, lens
