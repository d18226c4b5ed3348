"""Prompts: the user instruction that goes with a clip, drawn from a task's prompt file.

A prompt file is plain text, one prompt per line (blank lines and lines starting with
``#`` are ignored). The draw for a sample depends only on ``(seed, cut id, epoch)``, so
it does not change with the number of dataloader workers, and a resumed run draws the
same prompts as an uninterrupted one.

    prompts = PromptSet.from_file("configs/prompts/transcribe.txt")
    prompts.draw(cut_id="mini_en-train-0001", epoch=3, seed=42)
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# Used when neither the data config nor the train config names a prompt file for a task.
DEFAULT_PROMPTS: dict[str, str] = {
    "transcribe": "Transcribe the audio.",
    "continue": "Continue the conversation.",
    "describe": "Describe the audio.",
    "answer": "Answer the question in the audio.",
    "instruct": "Follow the instruction.",
}


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from the parts' text, the same in every process and Python run."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass(frozen=True)
class PromptSet:
    prompts: tuple[str, ...]
    source: str = "<default>"

    @classmethod
    def from_file(cls, path: str | Path) -> PromptSet:
        return _load(str(Path(path).resolve()))

    @classmethod
    def default_for(cls, task: str) -> PromptSet:
        return cls((DEFAULT_PROMPTS.get(task, "Listen to the audio."),))

    def draw(self, cut_id: str, epoch: int, seed: int) -> str:
        if len(self.prompts) == 1:
            return self.prompts[0]
        return random.Random(stable_seed(seed, cut_id, epoch)).choice(self.prompts)


@lru_cache(maxsize=64)
def _load(path: str) -> PromptSet:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"prompt file '{file}' not found")
    lines = [line.strip() for line in file.read_text(encoding="utf-8").splitlines()]
    prompts = tuple(line for line in lines if line and not line.startswith("#"))
    if not prompts:
        raise ValueError(f"prompt file '{file}' holds no prompt (one per line expected)")
    return PromptSet(prompts, source=str(file))
