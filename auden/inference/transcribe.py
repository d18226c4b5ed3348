"""Ask an exported audio LLM about audio files: transcribe them, or any other prompt.

    replies = respond("exp/audio_llm/export", ["a.wav", "b.flac"], "Transcribe the audio.")
"""

from __future__ import annotations

from pathlib import Path

import torch

from auden.audio.io import read_audio
from auden.auto.auto_model import AutoModel
from auden.types import AudioChatModel

SAMPLING_RATE = 16000


def load_waveform(path: str | Path) -> torch.Tensor:
    """A file's first channel at 16 kHz (resampled if needed), as a 1-D float tensor.

    Missing, empty, unreadable, NaN-filled and too-short files are refused with an error
    that names the file (auden.audio.io).
    """
    return torch.from_numpy(read_audio(path, SAMPLING_RATE))


def respond(
    model_dir: str | Path,
    audio_files: list[str | Path],
    prompt: str,
    *,
    max_new_tokens: int = 128,
    num_beams: int = 1,
) -> list[str]:
    """The model's reply to ``prompt`` about each file, decoded in one batch."""
    model = AutoModel.from_pretrained(model_dir).eval()
    if not isinstance(model, AudioChatModel):
        raise ValueError(f"'{model_dir}' holds a {type(model).__name__}, not an audio LLM")
    waveforms = [load_waveform(f) for f in audio_files]
    messages = [
        [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": prompt}]}]
        for _ in audio_files
    ]
    with torch.inference_mode():
        return model.generate(
            waveforms,
            messages,
            sampling_rate=SAMPLING_RATE,
            clip_names=[str(f) for f in audio_files],
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
        )
