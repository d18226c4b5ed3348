"""Cut filters applied before sampling: duration range, empty target, clip too short.

A model tells the filter whether a target fits a clip in one of two ways: a callable
``fits(num_frames, target) -> bool`` (e.g. a CTC model: enough encoder frames for the
tokens), or a ratio ``min_frames_per_token`` together with a ``count_tokens`` callable
(whitespace words when none is given).
Dropped cuts are counted by reason and the first few are logged with their ids.

    keep = CutFilter(FilterSpec(min_duration=0.5, max_duration=30), task_of=..., fits=...)
    cuts = cuts.filter(keep)
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from lhotse.cut import Cut

from auden.data.tasks import get_task

logger = logging.getLogger(__name__)

FitsFn = Callable[[int, str], bool]
CountTokensFn = Callable[[str], int]
_LOGGED_PER_REASON = 10


@dataclass(frozen=True)
class FilterSpec:
    min_duration: float = 0.0
    max_duration: float = float("inf")
    min_frames_per_token: float = 0.0  # input feature frames per target token; 0 disables
    frame_rate: float = 100.0  # input feature frames per second


def count_words(text: str) -> int:
    """The token count used when the model offers no tokenizer: whitespace words."""
    return len(text.split())


def task_of(cut: Cut) -> str:
    """The task a cut was mixed in for (set by :func:`auden.data.mixing.tag_with_source`)."""
    custom = cut.custom or {}
    if "task" not in custom:
        raise ValueError(f"cut '{cut.id}' has no task; was it read through a data config?")
    return custom["task"]


class CutFilter:
    """A picklable predicate for ``CutSet.filter`` that counts what it drops and why."""

    def __init__(
        self,
        spec: FilterSpec,
        fits: FitsFn | None = None,
        count_tokens: CountTokensFn | None = None,
    ) -> None:
        self.spec = spec
        self.fits = fits
        self.count_tokens = count_tokens or count_words
        self.dropped: Counter[str] = Counter()

    def _drop(self, cut: Cut, reason: str, detail: str) -> bool:
        self.dropped[reason] += 1
        level = logging.WARNING if self.dropped[reason] <= _LOGGED_PER_REASON else logging.DEBUG
        logger.log(level, "dropping cut '%s' (%s): %s", cut.id, reason, detail)
        return False

    def __call__(self, cut: Cut) -> bool:
        spec = self.spec
        if not spec.min_duration <= cut.duration <= spec.max_duration:
            return self._drop(
                cut,
                "duration",
                f"{cut.duration:.2f} s outside [{spec.min_duration}, {spec.max_duration}]",
            )
        task = get_task(task_of(cut))
        try:
            target = task.target(cut)
        except (KeyError, ValueError) as e:
            return self._drop(cut, "no_target", str(e))
        if not target.strip():
            return self._drop(cut, "empty_target", f"task '{task.name}' target is empty")
        num_frames = int(round(cut.duration * spec.frame_rate))
        if self.fits is not None and not self.fits(num_frames, target):
            return self._drop(
                cut, "too_short", f"{num_frames} frames too few for target {target!r}"
            )
        if spec.min_frames_per_token > 0:
            num_tokens = self.count_tokens(target)
            if num_frames < spec.min_frames_per_token * num_tokens:
                return self._drop(
                    cut,
                    "too_short",
                    f"{num_frames} frames < {spec.min_frames_per_token} x {num_tokens} tokens",
                )
        return True
