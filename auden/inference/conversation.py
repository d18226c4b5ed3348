"""What a user asks the pipeline, in any accepted shape, as one checked conversation.

Accepted inputs (Hugging Face's audio-text-to-text shapes, plus OpenAI's audio part):

- audio alone: a path, bytes, or an array with ``sampling_rate=``;
- ``{"audio": ..., "text": "What does the person say?", "sampling_rate": ...}``
  (``text`` optional: the task's prompt is used);
- chat messages: ``[{"role": "user", "content": [{"type": "audio", "path": "a.wav"},
  {"type": "text", "text": "..."}]}, ...]``; an audio part holds ``path``, ``audio``
  (path, bytes or array), ``array`` + ``sampling_rate``, or ``url``; an ``input_audio``
  part holds OpenAI's ``{"data": base64, "format": "wav"}``. Several turns and several
  clips per conversation are fine; the last turn must be the user's.

    conv = to_conversation({"audio": "a.wav"}, name="input 0", prompt="Transcribe the audio.")
    conv.clips      # [tensor [N]] at 16 kHz
    conv.messages   # [{"role": "user", "content": [{"type": "audio"}, {"type": "text", ...}]}]
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from auden.inference.audio_input import SAMPLING_RATE, AudioInputError, read_audio


@dataclass
class Conversation:
    """Messages whose audio parts are ``{"type": "audio"}``, and their clips in order."""

    messages: list[dict]
    clips: list[torch.Tensor] = field(default_factory=list)
    name: str = "input"

    @property
    def seconds(self) -> float:
        return sum(c.numel() for c in self.clips) / SAMPLING_RATE


def to_conversation(
    item,
    *,
    name: str,
    prompt: str,
    sampling_rate: int | None = None,
    allow_urls: bool = False,
) -> Conversation:
    """Check ``item`` and read its audio; ``prompt`` fills a last user turn with no text."""
    if _is_messages(item):
        messages = [dict(m) for m in item]
    elif isinstance(item, dict):
        if "audio" not in item:
            raise AudioInputError(
                f"{name}: a dict input needs 'audio' (and optionally 'text'); got {sorted(item)}"
            )
        part = {"type": "audio", "audio": item["audio"]}
        rate = item.get("sampling_rate", sampling_rate)
        if rate is not None:
            part["sampling_rate"] = rate
        content = [part]
        if item.get("text"):
            content.append({"type": "text", "text": str(item["text"])})
        messages = [{"role": "user", "content": content}]
    else:
        part = {"type": "audio", "audio": item}
        if sampling_rate is not None:
            part["sampling_rate"] = sampling_rate
        messages = [{"role": "user", "content": [part]}]
    return _read_messages(messages, name, prompt, allow_urls)


def _is_messages(item) -> bool:
    return (
        isinstance(item, (list, tuple))
        and len(item) > 0
        and all(isinstance(m, dict) and "role" in m for m in item)
    )


def _read_messages(messages: list[dict], name: str, prompt: str, allow_urls: bool) -> Conversation:
    if not messages:
        raise AudioInputError(f"{name}: no messages")
    if messages[-1].get("role") != "user":  # checked before any audio is decoded
        raise AudioInputError(
            f"{name}: the messages end with an '{messages[-1].get('role')}' turn; the last "
            "turn must be the user's (the model replies to it)"
        )
    clips: list[torch.Tensor] = []
    out: list[dict] = []
    for j, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        where = f"{name}, message {j}"
        if role not in ("system", "user", "assistant"):
            raise AudioInputError(f"{where}: role must be system, user or assistant, got {role!r}")
        if content is None:
            raise AudioInputError(f"{where}: 'content' is missing")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, (list, tuple)):
            raise AudioInputError(f"{where}: content must be a string or a list of parts")
        parts = []
        for k, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                parts.append({"type": "text", "text": str(part.get("text", ""))})
            elif kind in ("audio", "input_audio"):
                if role != "user":
                    raise AudioInputError(f"{where}: only user turns may hold audio")
                clip_name = f"{where}, part {k}"
                clips.append(_read_part(part, clip_name, allow_urls))
                parts.append({"type": "audio"})
            else:
                raise AudioInputError(
                    f"{where}, part {k}: unknown content part type {kind!r} "
                    "(use 'text', 'audio' or 'input_audio')"
                )
        out.append({"role": role, "content": parts})
    if not clips:
        raise AudioInputError(
            f"{name}: no audio in the request; this model answers about audio, so give at "
            "least one audio part"
        )
    last = out[-1]
    if isinstance(last["content"], list) and not any(
        p["type"] == "text" and p["text"].strip() for p in last["content"]
    ):
        last["content"] = [*last["content"], {"type": "text", "text": prompt}]
    return Conversation(messages=out, clips=clips, name=name)


def _read_part(part: dict, name: str, allow_urls: bool) -> torch.Tensor:
    if part.get("type") == "input_audio":
        payload = part.get("input_audio") or {}
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, str) or not data:
            raise AudioInputError(f"{name}: input_audio needs 'data' (base64 audio)")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as e:
            raise AudioInputError(f"{name}: input_audio 'data' is not valid base64: {e}") from e
        fmt = payload.get("format", "wav")
        return read_audio(raw, name=f"{name} ({fmt}, {len(raw)} bytes)")
    rate = part.get("sampling_rate")
    for key in ("path", "audio", "array", "url"):
        if key in part:
            value = part[key]
            if key == "url" and not allow_urls:
                raise AudioInputError(
                    f"{name}: audio URLs are refused; pass allow_urls=True to fetch them"
                )
            if isinstance(value, list):
                value = np.asarray(value, dtype=np.float32)
            label = f"{name} ('{value}')" if isinstance(value, (str, Path)) else name
            return read_audio(value, sampling_rate=rate, name=label, allow_urls=allow_urls)
    raise AudioInputError(f"{name}: an audio part needs 'path', 'audio', 'array' or 'url'")
