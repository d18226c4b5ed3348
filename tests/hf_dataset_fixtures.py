"""Tiny Hugging Face datasets on disk, shaped like the multi-task mixture's sources.

Each one has real wav audio in an ``Audio`` column, saved with ``save_to_disk`` as a
DatasetDict (train, and validation or dev as the real one names it), with the column
names of the real dataset it stands for. Used by the hf_to_lhotse and multitask tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLING_RATE = 16000


@dataclass(frozen=True)
class FakeSource:
    name: str  # the folder name under the download dir, as egs/multitask/prepare.sh expects
    task: str
    audio_column: str
    target_column: str
    instruction_column: str | None = None
    valid_split: str = "validation"


SOURCES = (
    FakeSource("loquacious", "transcribe", "wav", "text", valid_split="dev"),
    FakeSource("soda_audio", "continue", "audio_second_last_turn", "alt_last_turn"),
    FakeSource("audioset_strong", "describe", "audio", "caption"),
    FakeSource("heysquad", "answer", "audio", "answers.text.0"),
    FakeSource("sift", "instruct", "audio", "response", instruction_column="instruction"),
)


def _tone(seed: int, duration: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration * SAMPLING_RATE)) / SAMPLING_RATE
    freq = 200 + 50 * (seed % 13)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)).astype(
        np.float32
    )


def _rows(source: FakeSource, n: int, offset: int) -> list[dict]:
    rows = []
    for i in range(offset, offset + n):
        if source.task == "transcribe":
            row = {"text": f"utterance number {i}", "ID": f"spk{i % 3}-{i}"}
        elif source.task == "continue":
            row = {
                "dialogue": [f"hello {i}", f"how are you {i}", f"fine thanks {i}"],
                "alt_last_turn": f"glad to hear it {i}",
            }
        elif source.task == "describe":
            row = {"caption": f"a dog barks {i} times"}
        elif source.task == "answer":
            row = {
                "question": f"what is {i} plus one",
                "answers": {"text": [str(i + 1), f"{i + 1}."], "answer_start": [0, 0]},
            }
        else:
            row = {"instruction": f"count the beeps in clip {i}", "response": f"{i % 5} beeps"}
        rows.append(row)
    return rows


def make_hf_dataset(
    root: Path, source: FakeSource, n_train: int = 6, n_valid: int = 2, seed: int = 0
) -> Path:
    """Write ``root/<source.name>`` as a save_to_disk DatasetDict with an Audio column."""
    from datasets import Audio, Dataset, DatasetDict

    folder = root / source.name
    wav_dir = root / f"{source.name}_wavs"
    wav_dir.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, n, offset in (("train", n_train, 0), (source.valid_split, n_valid, n_train)):
        rows = _rows(source, n, offset)
        for k, row in enumerate(rows):
            i = offset + k
            wav = wav_dir / f"{split}-{i}.wav"
            sf.write(wav, _tone(seed * 1000 + i, 0.4 + 0.1 * (i % 5)), SAMPLING_RATE)
            row[source.audio_column] = str(wav)
        columns = {key: [row[key] for row in rows] for key in rows[0]}
        splits[split] = Dataset.from_dict(columns).cast_column(source.audio_column, Audio())
    # save_to_disk embeds the audio bytes, so the dataset does not need the wav files.
    DatasetDict(splits).save_to_disk(str(folder))
    return folder


def expected_target(source: FakeSource, index: int) -> str:
    """The target text row ``index`` (counting train then validation) must end up with."""
    row = _rows(source, 1, index)[0]
    value = row
    for key in source.target_column.split("."):
        value = value[int(key)] if isinstance(value, list) else value[key]
    return str(value)
