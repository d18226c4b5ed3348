"""The map-style dataset that turns a sampled CutSet into an :class:`AudioBatch`.

Used with a Lhotse sampler, as in Lhotse's own recipes::

    dataset = AudioLlmDataset(PrecomputedInput(), seed=42, training=True)
    loader = DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=2)

Per cut it draws the prompt, reads the target of the cut's task, the transcript and the
labels (string fields of ``supervision.custom``), and loads features; per batch it
applies the augmentations. Every target a model learns from is put on the batch here, so no model
reads a cut. All randomness comes from generators seeded by
``(seed, epoch, cut ids)``, never from the worker's global state, so a batch is the
same whichever worker builds it and whether or not the run was resumed.

A cut whose audio or features cannot be read is either dropped from its batch and
reported in ``AudioBatch.skipped_cut_ids`` (``bad_cut="skip"``) or raises an error that
names it (``bad_cut="error"``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence

import numpy as np
import torch
from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.dataset import CutMix, PerturbSpeed, SpecAugment

from auden.audio.features import FeatureMismatchError
from auden.data.filters import task_of
from auden.data.inputs import FeatureInput
from auden.data.prompts import PromptSet, stable_seed
from auden.data.tasks import get_task
from auden.types import AudioBatch

logger = logging.getLogger(__name__)

BAD_CUT_MODES = ("skip", "error")


class BadCutError(RuntimeError):
    """A cut's audio or features could not be read (``data.bad_cut=error``)."""


def user_message(prompt: str) -> dict:
    """The user turn: the audio, then the prompt; the audio alone when the prompt is empty
    (an ``instruct`` cut whose instruction is "": the clip itself is the message)."""
    parts: list[dict] = [{"type": "audio"}]
    if prompt:
        parts.append({"type": "text", "text": prompt})
    return {"role": "user", "content": parts}


def assistant_message(target: str) -> dict:
    return {"role": "assistant", "content": target}


class BatchAugment:
    """Augmentations with their randomness drawn from one seeded generator per batch."""

    def __init__(
        self,
        spec_augment: SpecAugment | None = None,
        speed_factors: Sequence[float] = (),
        noise_cuts: CutSet | None = None,
    ) -> None:
        self.spec_augment = spec_augment
        self.speed_factors = tuple(speed_factors)
        self.noise_cuts = noise_cuts

    def on_cuts(self, cuts: CutSet, seed: int) -> CutSet:
        if self.speed_factors:
            cuts = PerturbSpeed(self.speed_factors, p=2 / 3, randgen=random.Random(seed))(cuts)
        if self.noise_cuts is not None:
            cuts = CutMix(self.noise_cuts, snr=(10, 20), p=0.5, seed=random.Random(seed + 1))(
                cuts
            )
        return cuts

    def on_features(self, features: torch.Tensor, seed: int) -> torch.Tensor:
        if self.spec_augment is None or features.shape[0] == 0:
            return features
        # lhotse's SpecAugment draws from the global generators: isolate and seed them.
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.manual_seed(seed)
            try:
                return self.spec_augment(features)
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


class AudioLlmDataset(torch.utils.data.Dataset):
    """Cuts -> features + chat messages, for training (with the assistant turn) or decoding."""

    def __init__(
        self,
        inputs: FeatureInput,
        *,
        seed: int = 0,
        training: bool = True,
        augment: BatchAugment | None = None,
        bad_cut: str = "skip",
        prompt_for: Callable[[Cut, str], PromptSet] | None = None,
    ) -> None:
        if bad_cut not in BAD_CUT_MODES:
            raise ValueError(f"bad_cut must be one of {BAD_CUT_MODES}, got '{bad_cut}'")
        self.inputs = inputs
        self.seed = seed
        self.training = training
        self.augment = augment or BatchAugment()
        self.bad_cut = bad_cut
        self.prompt_for = prompt_for or prompts_of_cut
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Prompts and augmentation depend on the epoch; call before iterating a new one."""
        self.epoch = epoch

    def _batch_seed(self, cuts: CutSet) -> int:
        return stable_seed(self.seed, self.epoch, *(c.id for c in cuts))

    def __getitem__(self, cuts: CutSet) -> AudioBatch:
        batch_seed = self._batch_seed(cuts)
        if self.training:
            cuts = self.augment.on_cuts(cuts, batch_seed)
        kept: list[Cut] = []
        feats, valid = [], []
        skipped: list[str] = []
        for cut in cuts:
            cause: Exception | None = None
            try:
                f, n = self.inputs.load(cut)
                message = _nonfinite(cut, f)
            except FeatureMismatchError:
                raise
            except Exception as e:  # any reader error: missing file, corrupt data, ...
                cause = e
                message = (
                    f"cut '{cut.id}'{_audio_path(cut)}: cannot load features/audio: "
                    f"{type(e).__name__}: {_short(str(e))}"
                )
            if message is not None:
                if self.bad_cut == "error":
                    raise BadCutError(message) from cause
                logger.warning("skipping %s", message)
                skipped.append(cut.id)
                continue
            kept.append(cut)
            feats.append(f)
            valid.append(n)
        features, feature_lens = self.inputs.collate(feats, valid)
        if self.training:
            features = self.augment.on_features(features, batch_seed)

        messages, targets, tasks, prompts = [], [], [], []
        for cut in kept:
            task = get_task(task_of(cut))
            prompt = task.instruction(cut)
            if prompt is None:
                prompt = self.prompt_for(cut, task.name).draw(
                    f"{cut.id}:{task.name}", self.epoch, self.seed
                )
            target = task.target(cut)
            conversation = [user_message(prompt)]
            if self.training:
                conversation.append(assistant_message(target))
            messages.append(conversation)
            targets.append(target)
            tasks.append(task.name)
            prompts.append(prompt)
        return AudioBatch(
            features=features,
            feature_lens=feature_lens,
            messages=messages,
            targets=targets,
            tasks=tasks,
            prompts=prompts,
            cuts=kept,
            skipped_cut_ids=skipped,
            texts=[transcript_of(c) for c in kept],
            labels=labels_of(kept),
        )


def _nonfinite(cut: Cut, features: torch.Tensor) -> str | None:
    """Why a cut's features are unusable (NaN/Inf values), or None.

    NaN audio gives NaN features, and one NaN cut would make the whole batch's loss
    non-finite: checking here costs the cut, not the step of every cut batched with it.
    """
    finite = torch.isfinite(features)
    if bool(finite.all()):
        return None
    bad = features.numel() - int(finite.sum())
    return (
        f"cut '{cut.id}'{_audio_path(cut)}: {bad} of {features.numel()} feature values are "
        f"NaN or Inf (corrupt audio or feature archive)"
    )


def transcript_of(cut: Cut) -> str:
    """The words spoken in a cut ("" when it has none, e.g. a sound event)."""
    return (cut.supervisions[0].text or "") if cut.supervisions else ""


def labels_of(cuts: Sequence[Cut]) -> dict[str, list[str | None]]:
    """Every string field of the cuts' ``supervision.custom``, as one list per field."""
    customs = [(c.supervisions[0].custom or {}) if c.supervisions else {} for c in cuts]
    names = sorted({k for custom in customs for k, v in custom.items() if isinstance(v, str)})

    def value(custom: dict, name: str) -> str | None:
        v = custom.get(name)
        return v if isinstance(v, str) else None

    return {name: [value(custom, name) for custom in customs] for name in names}


def prompts_of_cut(cut: Cut, task: str) -> PromptSet:
    """The prompt file tagged on the cut by its data source, else the task's default."""
    prompt_file = (cut.custom or {}).get("prompt_file")
    return PromptSet.from_file(prompt_file) if prompt_file else PromptSet.default_for(task)


def _short(text: str, limit: int = 300) -> str:
    """One line of at most ``limit`` characters (lhotse's errors span many lines)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _audio_path(cut: Cut) -> str:
    recording = getattr(cut, "recording", None)
    if recording is None or not recording.sources:
        return ""
    return f" (audio '{recording.sources[0].source}')"
