"""Where a cut's features come from: precomputed storage, or audio through an extractor.

Both return a ``[T, F]`` float tensor per cut and know how to pad a batch. With
``pad_to_30s`` (Whisper encoders expect 3000 frames), on-the-fly input pads the *audio*
with silence before extraction, as Whisper's own processor does; precomputed input pads
the features with each clip's lowest value.
"""

from __future__ import annotations

import logging
from typing import Protocol

import torch
from lhotse.cut import Cut
from lhotse.features import FeatureExtractor
from lhotse.utils import LOG_EPSILON

from auden.audio.features import FeatureMismatchError

logger = logging.getLogger(__name__)

WHISPER_SECONDS = 30.0


class FeatureInput(Protocol):
    num_features: int | None

    def load(self, cut: Cut) -> tuple[torch.Tensor, int]:
        """The cut's ``[T, F]`` features and how many of the T frames hold real audio."""
        ...

    def collate(
        self, feats: list[torch.Tensor], valid: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


def _pad_batch(
    feats: list[torch.Tensor], num_frames: int, fill: list[float], num_features: int
) -> torch.Tensor:
    out = torch.empty(len(feats), num_frames, num_features)
    for i, (f, value) in enumerate(zip(feats, fill)):
        out[i].fill_(value)
        out[i, : f.shape[0]] = f
    return out


class PrecomputedInput:
    """Features stored with the cuts (e.g. Lhotse Fbank written by prepare.sh)."""

    def __init__(
        self,
        pad_to_30s: bool = False,
        frame_rate: float = 100.0,
        kind: str | None = None,
        num_mel_bins: int | None = None,
    ) -> None:
        self.pad_to_30s = pad_to_30s
        self.frame_rate = frame_rate
        self.kind = kind  # "fbank" | "whisper_fbank": checked against the stored type
        self.num_features: int | None = num_mel_bins

    def _check(self, cut: Cut) -> None:
        if not cut.has_features:
            raise ValueError("has no precomputed features (set data.on_the_fly_feats=true?)")
        stored = cut.features.type
        if self.kind is not None and ("whisper" in stored) != (self.kind == "whisper_fbank"):
            raise FeatureMismatchError(
                f"cut '{cut.id}' has '{stored}' features but data.feature={self.kind}"
            )
        if self.num_features is not None and cut.num_features != self.num_features:
            raise FeatureMismatchError(
                f"cut '{cut.id}' has {cut.num_features}-dim features but "
                f"data.num_mel_bins={self.num_features}"
            )

    def load(self, cut: Cut) -> tuple[torch.Tensor, int]:
        self._check(cut)
        feats = torch.from_numpy(cut.load_features()).float()
        self.num_features = feats.shape[1]
        return feats, feats.shape[0]

    def collate(
        self, feats: list[torch.Tensor], valid: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        lens = torch.tensor(valid, dtype=torch.int64)
        num_frames = max((f.shape[0] for f in feats), default=0)
        if self.pad_to_30s:
            num_frames = max(num_frames, int(WHISPER_SECONDS * self.frame_rate))
            fill = [float(f.min()) for f in feats]
        else:
            fill = [LOG_EPSILON] * len(feats)
        return _pad_batch(feats, num_frames, fill, self.num_features or 0), lens


class NoAudioInput:
    """For a model that reads no audio (a text LLM learning from the transcripts): nothing
    is read from disk, and every row gets zero frames (features ``[B, 0, 0]``)."""

    num_features: int | None = 0

    def load(self, cut: Cut) -> tuple[torch.Tensor, int]:
        return torch.empty(0, 0), 0

    def collate(
        self, feats: list[torch.Tensor], valid: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.empty(len(feats), 0, 0), torch.zeros(len(feats), dtype=torch.int64)


class OnTheFlyInput:
    """Features computed from the audio in the dataloader workers."""

    def __init__(self, extractor: FeatureExtractor, pad_to_30s: bool = False) -> None:
        self.extractor = extractor
        self.pad_to_30s = pad_to_30s
        self.num_features: int | None = extractor.feature_dim(16000)

    def load(self, cut: Cut) -> tuple[torch.Tensor, int]:
        audio = cut.load_audio()  # [channels, samples]
        samples = torch.as_tensor(audio[0], dtype=torch.float32)
        valid_samples = samples.shape[0]
        if self.pad_to_30s:
            target = int(WHISPER_SECONDS * cut.sampling_rate)
            if valid_samples < target:
                samples = torch.nn.functional.pad(samples, (0, target - valid_samples))
        feats = torch.as_tensor(self.extractor.extract(samples.numpy(), cut.sampling_rate))
        feats = feats.float()
        if not self.pad_to_30s:
            return feats, feats.shape[0]
        seconds = valid_samples / cut.sampling_rate
        return feats, min(feats.shape[0], int(round(seconds / self.extractor.frame_shift)))

    def collate(
        self, feats: list[torch.Tensor], valid: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        lens = torch.tensor(valid, dtype=torch.int64)
        num_frames = max((f.shape[0] for f in feats), default=0)
        fill = [float(f.min()) if self.pad_to_30s else LOG_EPSILON for f in feats]
        return _pad_batch(feats, num_frames, fill, self.num_features or 0), lens
