"""The settings of a SIFT run: how targets are sampled, and what is made in which pieces.

Kept apart from the code that needs torch and transformers, so that ``auden --help``
stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from auden.data.sift.modes import MODES, get_mode


@dataclass(frozen=True)
class SamplingConfig:
    """How targets are sampled; ``temperature=0`` is greedy."""

    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50  # 0: no top-k cut
    repetition_penalty: float = 1.05
    max_new_tokens: int = 96  # the cap on a target's length, in LLM tokens

    def __post_init__(self) -> None:
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError(f"bad sampling settings: {self}")
        if self.max_new_tokens <= 0:
            raise ValueError(f"max_new_tokens must be positive, got {self.max_new_tokens}")


@dataclass(frozen=True)
class SiftOptions:
    """What to make, and how the work is cut up."""

    modes: tuple[str, ...] = tuple(MODES)
    seed: int = 0
    batch_size: int = 16  # requests per generate call
    part_size: int = 1000  # input cuts per resumable part
    max_words: int = 60  # longer targets are dropped as too_long
    device: str = "auto"
    dtype: str = "auto"

    def __post_init__(self) -> None:
        for mode in self.modes:
            get_mode(mode)
        if not self.modes:
            raise ValueError("no SIFT mode given")
        if self.batch_size <= 0 or self.part_size <= 0 or self.max_words <= 0:
            raise ValueError(f"batch_size, part_size and max_words must be positive: {self}")
