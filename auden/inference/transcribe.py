"""Ask an exported audio LLM about audio files: transcribe them, or any other prompt.

    replies = respond("exp/audio_llm/export", ["a.wav", "b.flac"], "Transcribe the audio.")
"""

from __future__ import annotations

from pathlib import Path

import torch
from lhotse import Recording

from auden.auto.auto_model import AutoModel

SAMPLING_RATE = 16000


def load_waveform(path: str | Path) -> torch.Tensor:
    """A file's first channel at 16 kHz (resampled if needed), as a 1-D float tensor."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file '{path}' not found")
    try:
        recording = Recording.from_file(path).resample(SAMPLING_RATE)
        samples = recording.load_audio()
    except Exception as e:  # lhotse raises several types for unreadable audio
        raise ValueError(f"cannot read audio file '{path}': {e}") from e
    return torch.from_numpy(samples[0]).float()


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
    if not hasattr(model, "generate"):
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
