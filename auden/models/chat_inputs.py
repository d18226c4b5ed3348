"""Chat messages -> LLM token ids with the audio token expanded, labels and padding.

The tokenizer's own chat template renders the conversation, so a Qwen2 (or any chat
LLM) sees exactly the layout it was trained on. Which tokens are learned is read from
the template's structure, not guessed: for every assistant turn ``i`` the template is
rendered for ``messages[:i]`` with the generation prompt and for ``messages[:i + 1]``;
the text between the two is that turn's reply (including its end-of-turn token), and
only its tokens get labels. The prompt is tokenised exactly as :meth:`ChatTokenizer.encode`
does for generation, so training and decoding see the same prompt tokens.

A sample has one clip, or (for inference) several: each audio token is expanded to
exactly as many positions as the projector gives for its clip, in order (a one-clip prompt
that already holds that many tokens is accepted as is); any other count is an error
naming the clip.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass
class ChatInputs:
    """A padded batch of token ids; ``labels`` is None for generation."""

    input_ids: torch.Tensor  # [B, L] int64
    attention_mask: torch.Tensor  # [B, L] int64, 1 at real tokens
    labels: torch.Tensor | None = None  # [B, L] int64, IGNORE_INDEX outside assistant replies


def content_to_text(content: str | list, audio_token: str, where: str) -> str:
    """A message content as text: a string as is, a parts list joined by spaces."""
    if isinstance(content, str):
        return content
    if not isinstance(content, (list, tuple)):
        raise ValueError(f"{where}: content must be a string or a list of parts, got {content!r}")
    pieces = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "audio":
            pieces.append(audio_token)
        elif kind == "text":
            pieces.append(str(part.get("text", "")))
        else:
            raise ValueError(f"{where}: unknown content part {part!r} (type 'audio' or 'text')")
    return " ".join(pieces)


def reply_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Cross-entropy of ``logits [B, L, V]`` against ``labels [B, L]`` (IGNORE_INDEX where
    nothing is learned), as the mean per target token; also the number of target tokens
    and how many of them the argmax predicts."""
    logits = logits.float()
    target = labels != IGNORE_INDEX
    num_targets = int(target.sum())
    loss = nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    ) / max(num_targets, 1)
    num_correct = int(((logits.argmax(-1) == labels) & target).sum())
    return loss, num_targets, num_correct


def ensure_audio_token(llm: nn.Module, tokenizer, audio_token: str) -> None:
    """Add the audio token to the tokenizer, and grow the embeddings, only when absent
    (an LLM such as Qwen2.5 has none; the audio LLM needs one in every prompt)."""
    if audio_token not in tokenizer.get_vocab():
        tokenizer.add_tokens([audio_token], special_tokens=True)
        logger.info("added audio token %s to the tokenizer", audio_token)
    token_id = tokenizer.convert_tokens_to_ids(audio_token)
    if token_id >= llm.get_input_embeddings().num_embeddings:
        llm.resize_token_embeddings(len(tokenizer))
        logger.info("resized the LLM's embeddings to %d", len(tokenizer))


def audio_as_text(message: dict, audio_token: str, text: str) -> dict:
    """A message with its audio (token or part) replaced by ``text``: what an LLM reads
    when words stand where the clip would be (text pretraining, the text baselines)."""
    content = message["content"]
    if isinstance(content, str):
        return {**message, "content": content.replace(audio_token, text)}
    parts = [
        {"type": "text", "text": text} if p.get("type") == "audio" else p for p in content
    ]
    return {**message, "content": parts}


class ChatTokenizer:
    """Render, tokenise, expand audio tokens and pad a batch of conversations."""

    def __init__(self, tokenizer, audio_token: str) -> None:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("the LLM's tokenizer has no chat template")
        self.tokenizer = tokenizer
        self.audio_token = audio_token
        self.audio_token_id = tokenizer.convert_tokens_to_ids(audio_token)
        if self.audio_token_id is None or self.audio_token_id == tokenizer.unk_token_id:
            raise ValueError(f"audio token '{audio_token}' is not in the tokenizer")
        pad = tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else tokenizer.eos_token_id

    # ----------------------------------------------------------------------------- render
    def _normalise(self, messages: list[dict], name: str) -> list[dict]:
        out = []
        for j, m in enumerate(messages):
            if "role" not in m or "content" not in m:
                raise ValueError(f"{name}: message {j} needs 'role' and 'content', got {m!r}")
            text = content_to_text(m["content"], self.audio_token, f"{name}, message {j}")
            out.append({"role": m["role"], "content": text})
        return out

    def _render(self, messages: list[dict], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def segments(
        self, messages: list[dict], name: str, *, for_generation: bool
    ) -> list[tuple[str, bool]]:
        """The rendered conversation as ``(text, is_label)`` pieces, in order."""
        messages = self._normalise(messages, name)
        if for_generation:
            if messages and messages[-1]["role"] == "assistant":
                raise ValueError(f"{name}: generation needs messages that end with a user turn")
            return [(self._render(messages, add_generation_prompt=True), False)]
        turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        if not turns:
            raise ValueError(f"{name}: training needs an assistant turn to learn, found none")
        pieces: list[tuple[str, bool]] = []
        done = ""
        for i in turns:
            prompt = self._render(messages[:i], add_generation_prompt=True)
            full = self._render(messages[: i + 1], add_generation_prompt=False)
            if not prompt.startswith(done) or not full.startswith(prompt):
                raise ValueError(
                    f"{name}: the chat template does not render turn {i} as a continuation of "
                    "the turns before it, so the assistant reply cannot be located"
                )
            pieces += [(prompt[len(done) :], False), (full[len(prompt) :], True)]
            done = full
        rest = self._render(messages, add_generation_prompt=False)
        if not rest.startswith(done):
            raise ValueError(f"{name}: the chat template renders the conversation inconsistently")
        if rest[len(done) :]:
            pieces.append((rest[len(done) :], False))
        return pieces

    # ----------------------------------------------------------------------------- encode
    def _expand_audio(self, ids: list[int], counts: list[int], name: str) -> list[int]:
        positions = [k for k, t in enumerate(ids) if t == self.audio_token_id]
        if len(positions) == len(counts):
            out: list[int] = []
            start = 0
            for k, n in zip(positions, counts):
                out += ids[start:k] + [self.audio_token_id] * n
                start = k + 1
            return out + ids[start:]
        contiguous = positions and positions[-1] - positions[0] + 1 == len(positions)
        if len(counts) == 1 and len(positions) == counts[0] and contiguous:
            return ids
        frames = f"{counts[0]} audio frames" if len(counts) == 1 else f"{len(counts)} clips of {counts} audio frames"
        raise ValueError(
            f"{name}: {frames} but {len(positions)} audio tokens ('{self.audio_token}') in its "
            "messages; put exactly one audio token per clip"
        )

    def encode(
        self,
        batch_messages: list[list[dict]],
        num_audio_frames: list[int] | list[list[int]],
        clip_names: list[str],
        *,
        for_generation: bool,
    ) -> ChatInputs:
        """Token ids for a batch; training pads on the right, generation on the left.

        ``num_audio_frames`` holds each conversation's frame count, or a list of counts
        (one per clip, in order) for a conversation with several clips.
        """
        if not (len(batch_messages) == len(num_audio_frames) == len(clip_names)):
            raise ValueError(
                f"{len(batch_messages)} conversations for {len(num_audio_frames)} audio frame "
                f"counts and {len(clip_names)} names; give one of each per conversation"
            )
        rows: list[list[int]] = []
        label_rows: list[list[int]] = []
        for messages, n, name in zip(batch_messages, num_audio_frames, clip_names):
            counts = [int(n)] if isinstance(n, int) or not hasattr(n, "__len__") else list(n)
            if not counts or min(counts) < 1:
                raise ValueError(f"{name}: too short, it yields no audio frame after projection")
            ids: list[int] = []
            labels: list[int] = []
            for text, is_label in self.segments(messages, name, for_generation=for_generation):
                piece = self.tokenizer(text, add_special_tokens=False).input_ids
                if is_label and self.audio_token_id in piece:
                    raise ValueError(f"{name}: an assistant reply holds the audio token")
                ids += piece
                labels += piece if is_label else [IGNORE_INDEX] * len(piece)
            expanded = self._expand_audio(ids, counts, name)
            if len(expanded) != len(ids):  # audio tokens sit in prompts: no label there
                sizes = iter(counts)
                labels = [
                    x
                    for t, label in zip(ids, labels)
                    for x in (
                        [IGNORE_INDEX] * next(sizes) if t == self.audio_token_id else [label]
                    )
                ]
            rows.append(expanded)
            label_rows.append(labels)
        return self._pad(rows, None if for_generation else label_rows, left=for_generation)

    def encode_text(
        self, batch_messages: list[list[dict]], names: list[str], *, for_generation: bool
    ) -> ChatInputs:
        """Token ids for conversations without audio (see :func:`audio_as_text`); padded
        as :meth:`encode` pads, labels on the assistant replies only."""
        rows: list[list[int]] = []
        label_rows: list[list[int]] = []
        for messages, name in zip(batch_messages, names, strict=True):
            ids: list[int] = []
            labels: list[int] = []
            for text, is_label in self.segments(messages, name, for_generation=for_generation):
                piece = self.tokenizer(text, add_special_tokens=False).input_ids
                ids += piece
                labels += piece if is_label else [IGNORE_INDEX] * len(piece)
            rows.append(ids)
            label_rows.append(labels)
        return self._pad(rows, None if for_generation else label_rows, left=for_generation)

    def _pad(self, rows: list[list[int]], label_rows: list[list[int]] | None, left: bool):
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.int64)
        mask = torch.zeros((len(rows), length), dtype=torch.int64)
        labels = None if label_rows is None else torch.full_like(ids, IGNORE_INDEX)
        for i, row in enumerate(rows):
            span = slice(length - len(row), length) if left else slice(0, len(row))
            ids[i, span] = torch.tensor(row, dtype=torch.int64)
            mask[i, span] = 1
            if labels is not None:
                labels[i, span] = torch.tensor(label_rows[i], dtype=torch.int64)
        return ChatInputs(input_ids=ids, attention_mask=mask, labels=labels)
