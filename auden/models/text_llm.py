"""TextLlm: a causal LLM taught a recipe's tasks from text alone, by the one trainer.

Real recipes start from a pretrained LLM that already reads, answers and continues text;
the offline ``mini_en`` recipe starts from a random tiny Qwen2 and teaches it here, before
it ever hears audio. Each row of an ordinary :class:`~auden.types.AudioBatch` becomes a text
conversation in which the clip's words stand where its audio will later be::

    user:      "female slow high what is three plus four Answer the question in the audio."
    assistant: "seven"

The words are the clip's ``label_fields`` (``supervision.custom`` values such as gender,
speed, pitch: what an audio LLM's label heads show its LLM) and then its transcript
(``batch.texts``); evaluate.py's text and cascade baselines read the same words. So when
the audio LLM is trained, the projector only has to make the audio look like words the
LLM already knows how to use. Only the assistant reply is learned; a sound without words
is read by its labels alone ("rising tone"), and one no label names adds nothing. Training is ``model=text_llm`` of the usual trainer
(DDP, checkpoints, resume, averaging); the export is a plain transformers folder with the
audio token in its tokenizer, what ``model.llm.pretrained_model`` of an audio LLM reads::

    torchrun --nproc_per_node=2 train.py --config-name train_llm exp_dir=exp/llm
    auden export exp/llm --filename checkpoint-3000.pt --out exp/llm/export
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer

from auden.audio.features import FeatureSpec
from auden.models.chat_inputs import (
    ChatTokenizer,
    audio_as_text,
    ensure_audio_token,
    reply_loss,
)
from auden.models.tiny_llm import save_llm_folder
from auden.types import AudioBatch, ModelOutput


def words_read_for_audio(labels: list[str | None], spoken: str) -> str:
    """What an LLM reads where a clip would be: its label words, then its spoken words.

    Each label word comes after a space, the first one included: " female fast high" is
    the tokens an audio LLM shows for its label heads' classes (one token a word in the
    tiny LLM; "high" at the start would be two). Text pretraining and evaluate.py's text
    and cascade baselines all write it here, so they read alike.
    """
    spoken = spoken.strip()
    named = "".join(f" {label}" for label in labels if label)
    return f"{named} {spoken}".rstrip() if named else spoken


@dataclass
class TextLlmConfig:
    """Hydra's ``model=text_llm`` node: the LLM folder to start from (every weight trains)."""

    model_type: str = "text_llm"
    pretrained_model: str = ""  # a transformers causal-LM folder with its tokenizer
    # Added to the tokenizer (and the embeddings grown) when absent, as the audio LLM does,
    # so the exported folder is ready for it.
    audio_token: str = "<|AUDIO|>"
    # supervision.custom fields read out before the words, in this order ("female fast high")
    label_fields: list[str] = field(default_factory=list)


class TextLlm(nn.Module):
    """A causal LLM that learns the assistant replies of the batch's conversations, read
    with words in place of the audio."""

    model_type = "text_llm"

    def __init__(self, config: TextLlmConfig, llm: nn.Module, tokenizer) -> None:
        super().__init__()
        self.config = config
        self.llm = llm
        self.tokenizer = tokenizer
        ensure_audio_token(llm, tokenizer, config.audio_token)
        self.chat = ChatTokenizer(tokenizer, config.audio_token)

    @classmethod
    def from_config(cls, config: TextLlmConfig | Any) -> TextLlm:
        from auden.auto.auto_config import AutoConfig

        config = AutoConfig.from_dict(config)
        if not config.pretrained_model:
            raise ValueError("model.pretrained_model: name the LLM folder to train")
        tokenizer = AutoTokenizer.from_pretrained(config.pretrained_model)
        llm = AutoModelForCausalLM.from_pretrained(config.pretrained_model, dtype=torch.float32)
        return cls(config, llm, tokenizer)

    @property
    def features(self) -> FeatureSpec | None:
        """None: the model reads no audio (the data loader loads no features for it)."""
        return None

    def target_fits(self, num_frames: int, target: str) -> bool:
        """Any clip fits: the target is not aligned to audio."""
        return True

    def words(self, batch: AudioBatch) -> list[str]:
        """What each row reads in place of its clip: label words, then the transcript."""
        if len(batch.texts) != len(batch):
            raise ValueError(
                f"batch of {len(batch)} rows carries {len(batch.texts)} transcripts "
                "(AudioBatch.texts): the text LLM reads them in place of the audio"
            )
        labels = [batch.labels.get(f) or [None] * len(batch) for f in self.config.label_fields]
        return [
            words_read_for_audio([row[i] for row in labels], spoken)
            for i, spoken in enumerate(batch.texts)
        ]

    def conversations(
        self, batch: AudioBatch, *, for_generation: bool
    ) -> tuple[list[int], list[list[dict]]]:
        """The rows whose clip has words or labels to read, as text conversations: (rows,
        messages). A clip without words is read by its labels alone (an event: "rising tone")."""
        rows, conversations = [], []
        for i, (messages, words) in enumerate(zip(batch.messages, self.words(batch))):
            if not words:
                continue  # a sound no label names: nothing to read
            if for_generation and messages and messages[-1]["role"] == "assistant":
                messages = messages[:-1]
            rows.append(i)
            conversations.append(
                [audio_as_text(m, self.config.audio_token, words) for m in messages]
            )
        return rows, conversations

    def _names(self, batch: AudioBatch, rows: list[int]) -> list[str]:
        if len(batch.cuts) == len(batch):
            return [f"cut '{batch.cuts[i].id}'" for i in rows]
        return [f"row {i}" for i in rows]

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    def forward(self, batch: AudioBatch) -> ModelOutput:
        """Teacher-forced loss over the assistant replies (mean per target token)."""
        rows, conversations = self.conversations(batch, for_generation=False)
        if not rows:  # nothing to read: a zero loss that still reaches every weight (DDP)
            zero = sum(p.sum() * 0.0 for p in self.parameters() if p.requires_grad)
            return ModelOutput(loss=zero, num_targets=0, num_correct=0)
        device = self.device
        inputs = self.chat.encode_text(
            conversations, self._names(batch, rows), for_generation=False
        )
        logits = self.llm(
            input_ids=inputs.input_ids.to(device),
            attention_mask=inputs.attention_mask.to(device),
        ).logits
        loss, num_targets, num_correct = reply_loss(logits[:, :-1], inputs.labels[:, 1:].to(device))
        return ModelOutput(loss=loss, num_targets=num_targets, num_correct=num_correct)

    @torch.no_grad()
    def decode(
        self,
        batch: AudioBatch,
        *,
        decoding_method: str = "greedy_search",
        beam_size: int = 1,
        max_new_tokens: int = 128,
    ) -> list[str]:
        """The reply to each row given its words as text ("" for rows without words)."""
        if decoding_method not in ("greedy_search", "beam_search"):
            raise ValueError(
                f"unknown decoding_method '{decoding_method}'; use 'greedy_search' or 'beam_search'"
            )
        rows, conversations = self.conversations(batch, for_generation=True)
        replies = [""] * len(batch)
        if not rows:
            return replies
        device = self.device
        inputs = self.chat.encode_text(conversations, self._names(batch, rows), for_generation=True)
        out = self.llm.generate(
            input_ids=inputs.input_ids.to(device),
            attention_mask=inputs.attention_mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=beam_size if decoding_method == "beam_search" else 1,
            pad_token_id=self.chat.pad_token_id,
        )
        texts = self.tokenizer.batch_decode(
            out[:, inputs.input_ids.shape[1] :], skip_special_tokens=True
        )
        for i, text in zip(rows, texts):
            replies[i] = text.strip()
        return replies

    def save_pretrained(self, folder: str | Path) -> Path:
        """A plain transformers folder (LLM + tokenizer): ``model.llm.pretrained_model``."""
        return save_llm_folder(folder, self.llm, self.tokenizer)
