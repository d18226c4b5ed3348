"""The audio-text-to-text pipeline: an exported audio LLM answering about audio.

It follows Hugging Face's ``audio-text-to-text`` schema, loads the model once, reads
any audio input (:mod:`auden.inference.conversation`), encodes long clips window by
window (:mod:`auden.inference.long_audio`) and decodes lists in length-sorted batches::

    from auden import pipeline
    p = pipeline("audio-text-to-text", model="exp/audio_llm/export")
    p({"audio": "a.wav", "text": "What does the person say?"})  # [{"generated_text": "..."}]
    p("a.wav", task="describe")                                   # the task's trained prompt
    p(["a.wav", "b.flac", "c.wav"], batch_size=16)                # one result list per input
    for piece in p.stream("a.wav"): print(piece, end="")          # tokens as they come
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TextIteratorStreamer

from auden.audio.features import build_feature_extractor
from auden.auto.auto_model import AutoModel
from auden.inference.audio_input import SAMPLING_RATE, AudioInputError
from auden.inference.conversation import Conversation, to_conversation
from auden.inference.long_audio import DEFAULT_OVERLAP_S, Windowing, encode_clips
from auden.inference.tasks import TaskPrompts
from auden.models.lora import base_module
from auden.types import AudioChatModel

logger = logging.getLogger(__name__)

TASK_NAME = "audio-text-to-text"
# Passed through to transformers' generate, as the Hugging Face pipeline does.
GENERATION_ARGS = frozenset(
    {
        "max_new_tokens",
        "min_new_tokens",
        "temperature",
        "top_p",
        "top_k",
        "do_sample",
        "num_beams",
        "repetition_penalty",
        "no_repeat_ngram_size",
        "length_penalty",
        "suppress_tokens",
        "seed",
    }
)


class AudioTextToTextPipeline:
    """Reply to audio (and an optional prompt or chat) with text; see the module doc."""

    def __init__(
        self,
        model,
        tasks: TaskPrompts | None = None,
        *,
        batch_size: int = 8,
        window_s: float | None = None,
        overlap_s: float = DEFAULT_OVERLAP_S,
        max_audio_s: float | None = None,
        allow_urls: bool = False,
        device: str | torch.device = "cpu",
    ) -> None:
        if not isinstance(model, AudioChatModel):
            raise ValueError(
                f"{type(model).__name__} is not an audio LLM (auden.types.AudioChatModel: "
                "generate, generate_from_frames, ...)"
            )
        self.model = model.to(device).eval()
        self.tasks = tasks or TaskPrompts()
        self.batch_size = batch_size
        self.max_audio_s = max_audio_s
        self.allow_urls = allow_urls
        encoder = base_module(model.audio_encoder)
        spec = model.features  # the features the model declares it reads
        self.extractor = build_feature_extractor(spec.kind, num_mel_bins=spec.num_mel_bins)
        self.windowing = Windowing.for_encoder(encoder, window_s, overlap_s)
        # One decode at a time: the server's batcher and streaming replies share the model.
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, folder: str | Path, **kwargs: Any) -> AudioTextToTextPipeline:
        """Load an ``auden export`` folder (model, tokenizer and ``tasks.json``)."""
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"'{folder}' is not an exported model (no config.json)")
        model = AutoModel.from_pretrained(folder)
        return cls(model, TaskPrompts.load(folder), **kwargs)

    @property
    def tokenizer(self):
        return self.model.tokenizer

    # ----------------------------------------------------------------------------- inputs
    def conversation(
        self,
        item,
        *,
        name: str = "input",
        task: str | None = None,
        sampling_rate: int | None = None,
    ) -> Conversation:
        """One input read and checked (audio decoded, prompt filled, length limit applied)."""
        conv = to_conversation(
            item,
            name=name,
            prompt=self.tasks.prompt(task),
            sampling_rate=sampling_rate,
            allow_urls=self.allow_urls,
        )
        if self.max_audio_s is not None and conv.seconds > self.max_audio_s:
            raise AudioTooLongError(
                f"{name}: {conv.seconds:.1f} s of audio, over the limit of {self.max_audio_s:g} s"
            )
        longest = self.tasks.trained_max_seconds
        for clip in conv.clips:
            seconds = clip.numel() / SAMPLING_RATE
            if longest is not None and seconds > longest:
                logger.warning(
                    "%s: a %.1f s clip, longer than any this model was trained on (%g s): "
                    "it reads the whole clip but may answer for part of it (README: long audio)",
                    name, seconds, longest,
                )
        return conv

    # ----------------------------------------------------------------------------- calls
    def __call__(
        self,
        inputs,
        *,
        task: str | None = None,
        batch_size: int | None = None,
        sampling_rate: int | None = None,
        **generate_kwargs: Any,
    ) -> list:
        """``[{"generated_text": reply}]`` for one input; one such list per input for a list."""
        single = not _is_batch(inputs)
        items = [inputs] if single else list(inputs)
        convs = [
            self.conversation(x, name=_name(x, i, single), task=task, sampling_rate=sampling_rate)
            for i, x in enumerate(items)
        ]
        replies = self.generate(convs, batch_size=batch_size, **generate_kwargs)
        results = [[{"generated_text": r}] for r in replies]
        return results[0] if single else results

    def generate(
        self,
        convs: Sequence[Conversation],
        *,
        batch_size: int | None = None,
        on_batch: Callable[[list[int], list[str]], None] | None = None,
        **generate_kwargs: Any,
    ) -> list[str]:
        """Replies to checked conversations, decoded longest first in batches, in input order.

        ``on_batch(indices, replies)`` is called as each batch finishes (progress, output).
        """
        kwargs = generation_kwargs(generate_kwargs)
        size = batch_size or self.batch_size
        order = sorted(range(len(convs)), key=lambda i: -convs[i].seconds)
        replies: list[str] = [""] * len(convs)
        for k in range(0, len(order), size):
            idx = order[k : k + size]
            texts = self._decode([convs[i] for i in idx], kwargs)
            for i, text in zip(idx, texts):
                replies[i] = text
            if on_batch is not None:
                on_batch(idx, texts)
        return replies

    def stream(
        self,
        inputs,
        *,
        task: str | None = None,
        sampling_rate: int | None = None,
        **generate_kwargs: Any,
    ) -> Iterator[str]:
        """The reply to one input, as text pieces while the tokens are generated."""
        conv = (
            inputs
            if isinstance(inputs, Conversation)
            else self.conversation(inputs, task=task, sampling_rate=sampling_rate)
        )
        return self.stream_conversation(conv, **generate_kwargs)

    def stream_conversation(self, conv: Conversation, **generate_kwargs: Any) -> Iterator[str]:
        kwargs = generation_kwargs(generate_kwargs)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                self._decode([conv], {**kwargs, "streamer": streamer})
            except BaseException as e:  # handed to the reader below
                failure.append(e)
                streamer.end()

        thread = threading.Thread(target=run, name="auden-stream", daemon=True)
        thread.start()
        started = False
        for piece in streamer:
            if not started:  # generate() strips the reply; so does the stream
                piece = piece.lstrip()
                started = bool(piece)
            if piece:
                yield piece
        thread.join()
        if failure:
            raise failure[0]

    # ----------------------------------------------------------------------------- model
    def _decode(self, convs: list[Conversation], kwargs: dict) -> list[str]:
        features = [
            torch.from_numpy(np.asarray(self.extractor.extract(c.numpy(), 16000)))
            for conv in convs
            for c in conv.clips
        ]
        with self._lock, torch.inference_mode():
            clip_frames = encode_clips(self.model, features, self.windowing)
            rows, per_clip, k = [], [], 0
            for conv in convs:
                mine = clip_frames[k : k + len(conv.clips)]
                k += len(conv.clips)
                rows.append(torch.cat(mine, 0))
                per_clip.append([m.shape[0] for m in mine])
            lens = torch.tensor([r.shape[0] for r in rows], dtype=torch.int64)
            frames = rows[0].new_zeros(len(rows), int(lens.max()), rows[0].shape[1])
            for i, r in enumerate(rows):
                frames[i, : r.shape[0]] = r
            return self.model.generate_from_frames(
                frames,
                lens.to(frames.device),
                [c.messages for c in convs],
                clip_names=[c.name for c in convs],
                frames_per_clip=per_clip,
                **kwargs,
            )


class AudioTooLongError(AudioInputError):
    """A request's audio is longer than the pipeline's ``max_audio_s``."""


def generation_kwargs(given: dict[str, Any]) -> dict[str, Any]:
    """Check and complete sampling arguments: a temperature or top_p asks for sampling."""
    unknown = set(given) - GENERATION_ARGS
    if unknown:
        raise TypeError(
            f"unknown generation argument(s) {sorted(unknown)}; known: {sorted(GENERATION_ARGS)}"
        )
    kwargs = {k: v for k, v in given.items() if v is not None}
    seed = kwargs.pop("seed", None)
    if seed is not None:
        torch.manual_seed(int(seed))
    if kwargs.get("temperature") == 0:  # OpenAI's meaning: greedy
        kwargs.pop("temperature")
        kwargs.setdefault("do_sample", False)
    if "do_sample" not in kwargs and ("temperature" in kwargs or "top_p" in kwargs):
        kwargs["do_sample"] = True
    return kwargs


def pipeline(
    task: str = TASK_NAME, model: str | Path | Any = None, **kwargs: Any
) -> AudioTextToTextPipeline:
    """``pipeline("audio-text-to-text", model=folder_or_model, batch_size=..., ...)``."""
    if task != TASK_NAME:
        raise ValueError(f"unknown pipeline task '{task}'; auden has '{TASK_NAME}'")
    if model is None:
        raise ValueError("pipeline() needs model= (an exported folder or a loaded audio LLM)")
    if isinstance(model, (str, Path)):
        return AudioTextToTextPipeline.from_pretrained(model, **kwargs)
    return AudioTextToTextPipeline(model, **kwargs)


def _is_batch(inputs) -> bool:
    if not isinstance(inputs, (list, tuple)) or not inputs:
        return False
    first = inputs[0]
    return not (isinstance(first, dict) and "role" in first)  # a list of messages is one input


def _name(item, index: int, single: bool) -> str:
    base = "input" if single else f"input {index}"
    if isinstance(item, (str, Path)):
        return f"{base} '{item}'"
    return base
