"""The contracts between data, models, training, decoding and inference.

The data pipeline produces an :class:`AudioBatch`; every encoder returns an
:class:`EncoderOutput`; every trainable model's ``forward(batch)`` returns a
:class:`ModelOutput`; :class:`SpeechModel` is what the trainer, evaluate.py and export
may rely on from any model, and :class:`AudioChatModel` what inference adds;
:class:`LabelClassifier` and :class:`CtcTranscriber` are what some models report beside
their replies (checked with ``isinstance``, never by probing attributes). This module
imports no other auden package, so both ``auden.data`` and ``auden.models`` can use it::

    batch = next(iter(loader))          # AudioBatch, features [B, T, F]
    out = model(batch)                  # ModelOutput: loss over out.num_targets targets
    hyps = model.decode(batch)          # one string per row of the batch
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:  # for annotations only: types imports no other auden package
    from lhotse.cut import Cut

    from auden.audio.features import FeatureSpec


# Names of the dtypes a config may ask for (``trainer.dtype``, ``model.llm.dtype``).
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def config_value(value: Enum | str) -> str:
    """The plain string of a config choice: Hydra hands enum members, Python callers strings."""
    return value.value if isinstance(value, Enum) else value


@dataclass
class AudioBatch:
    """One mini-batch, produced by :class:`auden.data.dataset.AudioLlmDataset`.

    Every target a model learns from is a field here; ``cuts`` is for ids and logging
    only, so a model never reaches into a manifest. ``messages[i]`` is row i's
    conversation in the transformers chat format: for training it ends with the
    assistant turn holding the target; for decoding it stops before it.
    """

    features: torch.Tensor  # [B, T, F] float32, right-padded
    feature_lens: torch.Tensor  # [B] int64, valid frames of each row
    messages: list[list[dict]]  # [B] conversations (chat format)
    targets: list[str]  # [B] the assistant turn of each row's task (the reference)
    tasks: list[str]  # [B] task names ("transcribe", "describe", ...)
    prompts: list[str]  # [B] the user prompt drawn for each row
    # [B] the transcript (supervision.text) of each clip, whatever the row's task; ""
    # where the clip has none. CTC losses learn from it.
    texts: list[str] = field(default_factory=list)
    # name -> [B] categorical labels, one list per string field of ``supervision.custom``
    # (None where a clip lacks the field); label heads and label words read them.
    labels: dict[str, list[str | None]] = field(default_factory=dict)
    cuts: list[Cut] = field(default_factory=list)  # [B] for ids and logging only
    # Cuts of this batch dropped because their audio/features could not be read
    # (``data.bad_cut=skip``); the trainer counts and logs them.
    skipped_cut_ids: list[str] = field(default_factory=list)

    @property
    def cut_ids(self) -> list[str]:
        return [c.id for c in self.cuts]

    def __len__(self) -> int:
        return self.features.shape[0]

    def to(self, device: torch.device | str) -> AudioBatch:
        return replace(
            self,
            features=self.features.to(device),
            feature_lens=self.feature_lens.to(device),
        )


@dataclass
class EncoderOutput:
    """What every audio encoder returns: frames and the number of valid frames per row."""

    frames: torch.Tensor  # [B, T', D] float, right-padded
    lens: torch.Tensor  # [B] int64, valid frames of each row (T' = max)

    def padding_mask(self) -> torch.Tensor:
        """[B, T'] bool, True at padded positions."""
        t = self.frames.shape[1]
        return torch.arange(t, device=self.lens.device)[None, :] >= self.lens[:, None]


@dataclass
class ModelOutput:
    """What a trainable model's ``forward(batch)`` returns to the trainer.

    ``loss`` is the mean over ``num_targets`` (tokens or frames) and is what gets
    back-propagated; the counts let the trainer aggregate exactly across batches and ranks.
    ``metrics`` holds extra per-batch sums to log (e.g. ``{"ctc_loss": ...}``).
    """

    loss: torch.Tensor  # [] scalar
    num_targets: int
    num_correct: int | None = None  # correctly predicted target tokens (token accuracy)
    metrics: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class SpeechModel(Protocol):
    """What training, evaluate.py and export need from a model (AudioLlm, CtcModel).

    ``tokenizer`` is saved beside the checkpoints; ``features`` says which features the
    model reads, and the data side follows it or refuses a mismatch; ``target_fits``
    lets the data filter drop clips too short for their target.
    """

    model_type: str
    tokenizer: Any  # a transformers tokenizer

    @property
    def features(self) -> FeatureSpec | None: ...  # None: reads no audio (a text LLM)

    def __call__(self, batch: AudioBatch) -> ModelOutput: ...

    def decode(
        self,
        batch: AudioBatch,
        *,
        decoding_method: str = "greedy_search",
        beam_size: int = 1,
        max_new_tokens: int = 128,
    ) -> list[str]: ...

    def target_fits(self, num_frames: int, target: str) -> bool: ...

    def save_pretrained(self, folder: str | Path) -> Path: ...


@runtime_checkable
class AudioChatModel(SpeechModel, Protocol):
    """A model that answers a chat about raw audio (what ``auden transcribe|chat`` use).

    ``generate_from_frames`` continues after the encoder (the pipeline encodes long clips
    window by window); ``generate_from_text`` is its LLM alone, reading text where each
    clip would be (evaluate.py's cascade and text baselines).
    """

    audio_encoder: Any  # an auden.models.encoders AudioEncoder (window limits, model_type)
    projector: Any

    def generate(
        self,
        audio: Sequence[torch.Tensor] | tuple[torch.Tensor, torch.Tensor],
        messages: list[list[dict]],
        **kwargs: Any,
    ) -> list[str]: ...

    def encode_audio(
        self, features: torch.Tensor, feature_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def generate_from_frames(
        self,
        frames: torch.Tensor,
        lens: torch.Tensor,
        messages: list[list[dict]],
        **kwargs: Any,
    ) -> list[str]: ...

    def generate_from_text(
        self, texts: list[str], messages: list[list[dict]], **kwargs: Any
    ) -> list[str]: ...


@runtime_checkable
class LabelClassifier(Protocol):
    """A model with utterance-label heads (gender, speed...): evaluate.py scores each
    field, and the text baselines read the predicted labels as words."""

    @property
    def label_fields(self) -> list[str]: ...  # the supervision.custom fields it predicts

    def classify(self, batch: AudioBatch) -> dict[str, list[str | None]]: ...  # field -> [B]

    # The class a None prediction of ``field`` is scored as ("" when its head has none).
    def label_none_class(self, field: str) -> str: ...


@runtime_checkable
class CtcTranscriber(Protocol):
    """A model with a CTC head beside its own replies (an audio LLM's joint CTC):
    evaluate.py scores its greedy transcripts, and the cascade baseline reads them."""

    @property
    def has_ctc(self) -> bool: ...  # False: built without the head (ctc.weight 0)

    def decode_ctc(self, batch: AudioBatch) -> list[str]: ...
