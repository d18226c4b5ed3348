"""A tiny exported audio LLM for the pipeline, CLI and server tests, and test audio."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tiny_audio_llm import make_outputs_input_dependent, make_tiny_llm, tiny_config

from auden.inference.tasks import TaskPrompts
from auden.models.audio_llm import AudioLlm

TASKS = TaskPrompts(
    tasks={
        "transcribe": ["Transcribe the audio.", "Write down what is said."],
        "describe": ["Describe the sound."],
    },
    default="transcribe",
)
# A random LLM tends to end at once; keep it off special tokens so there is text to compare.
MAX_NEW_TOKENS = 5


def export_tiny_model(root: Path) -> Path:
    """An exported tiny Whisper + Qwen2 audio LLM whose replies depend on the audio."""
    torch.manual_seed(0)
    model = AudioLlm.from_config(tiny_config(make_tiny_llm(root / "llm")))
    make_outputs_input_dependent(model)
    folder = model.save_pretrained(root / "export")
    TASKS.save(folder)
    return Path(folder)


def no_special(model_dir_or_pipeline) -> dict:
    tokenizer = model_dir_or_pipeline.tokenizer
    return {"max_new_tokens": MAX_NEW_TOKENS, "suppress_tokens": tokenizer.all_special_ids}


def tone(seconds: float, freq: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A tone with a little noise: different clips give the tiny model different inputs."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * noise).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    sf.write(path, samples, rate)
    return path


def wav_bytes(samples: np.ndarray, rate: int = 16000, fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt)
    return buffer.getvalue()
