"""Helpers for AudioLlm tests: a tiny LLM folder, a model config and batches."""

from __future__ import annotations

from pathlib import Path

import torch
from lhotse import MonoCut

from auden.models.audio_llm import AudioEncoderConfig, AudioLlmConfig, LlmConfig
from auden.models.projector import ProjectorConfig
from auden.models.tiny_llm import TinyLlmSize, save_tiny_llm, train_chat_tokenizer
from auden.types import AudioBatch

TEXTS = [
    "the cat sat on the mat",
    "a quick brown fox",
    "good morning to you",
    "hello world",
    "seven green apples",
    "rain falls in spain",
    "open the door please",
    "music fills the room",
]


def make_tiny_llm(folder: Path, *, with_audio_token: bool = True, texts=TEXTS) -> Path:
    tokenizer = train_chat_tokenizer(
        list(texts) + ["Transcribe:", "Repeat:"], vocab_size=400, with_audio_token=with_audio_token
    )
    return save_tiny_llm(folder, tokenizer, TinyLlmSize(hidden_size=64, intermediate_size=128))


def tiny_config(llm_folder: Path, **overrides) -> AudioLlmConfig:
    config = AudioLlmConfig(
        audio_encoder=AudioEncoderConfig(model_type="whisper", config="tiny-test"),
        projector=ProjectorConfig(ds_rate=4),
        llm=LlmConfig(pretrained_model=str(llm_folder)),
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def user_turn(prompt: str = "Transcribe:") -> dict:
    return {"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": prompt}]}


def make_batch(
    features: torch.Tensor, lens: torch.Tensor, targets: list[str], cut_ids: list[str] | None = None
) -> AudioBatch:
    messages = [[user_turn(), {"role": "assistant", "content": t}] for t in targets]
    cuts = [MonoCut(id=c, start=0.0, duration=1.0, channel=0) for c in cut_ids or []]
    return AudioBatch(
        features=features,
        feature_lens=lens,
        messages=messages,
        targets=list(targets),
        texts=list(targets),
        tasks=["transcribe"] * len(targets),
        prompts=["Transcribe:"] * len(targets),
        cuts=cuts,
    )


def random_batch(lens=(90, 41), texts=("hello world", "a quick brown fox")) -> AudioBatch:
    """Seeded random 80-bin features of ``lens`` frames, each row transcribing ``texts``."""
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(len(lens), max(lens), 80, generator=g)
    return make_batch(feats, torch.tensor(lens), list(texts[: len(lens)]))


@torch.no_grad()
def make_outputs_input_dependent(model) -> None:
    """A freshly initialised tiny LLM repeats one token whatever it hears; widen its weights
    so that generated text depends on the audio and the prompt (something to compare)."""
    for p in list(model.llm.parameters()) + list(model.projector.parameters()):
        p.normal_(std=0.3)
