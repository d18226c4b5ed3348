"""Turn a data config into one lazy CutSet: read manifests lazily, tag, mix or concatenate.

Each cut is tagged with the task (and prompt file) of the source it came from, in
``cut.custom["task"]`` / ``cut.custom["prompt_file"]``, so that one manifest can serve
several tasks and the dataset knows what to do with every cut it receives.

    sources = load_data_config("configs/train_data.yaml")
    cuts = mix_sources(sources, seed=42)   # CutSet.mux by weight, lazy
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from lhotse import CutSet, load_manifest_lazy
from lhotse.cut import Cut

from auden.data.config import DataSource

logger = logging.getLogger(__name__)


def _tag(cut: Cut, task: str, prompt_file: str | None) -> Cut:
    cut = cut.with_custom("task", task)
    if prompt_file:
        cut = cut.with_custom("prompt_file", prompt_file)
    return cut


def read_source(source: DataSource, default_prompt_file: str | Path | None = None) -> CutSet:
    """The source's cuts, read lazily and tagged with their task and prompt file."""
    try:
        cuts = load_manifest_lazy(source.manifest)
    except Exception as e:  # lhotse raises several types for unreadable manifests
        raise ValueError(f"cannot read manifest '{source.manifest}': {e}") from e
    if cuts is None or not isinstance(cuts, CutSet):
        raise ValueError(f"manifest '{source.manifest}' is not a Lhotse CutSet manifest")
    prompt_file = source.prompt_file or default_prompt_file
    return cuts.map(
        partial(_tag, task=source.task, prompt_file=str(prompt_file) if prompt_file else None)
    )


def mix_sources(
    sources: list[DataSource], seed: int, default_prompt_file: str | Path | None = None
) -> CutSet:
    """All sources multiplexed lazily, each drawn with probability proportional to its weight."""
    cutsets = [read_source(s, default_prompt_file) for s in sources]
    for s in sources:
        logger.info("train source %s: %s (task %s, weight %g)", s.name, s.manifest, s.task, s.weight)
    if len(cutsets) == 1:
        return cutsets[0]
    return CutSet.mux(*cutsets, weights=[s.weight for s in sources], seed=seed)


def concat_sources(
    sources: list[DataSource], default_prompt_file: str | Path | None = None
) -> CutSet:
    """All sources one after the other (validation: every cut exactly once)."""
    cutsets = [read_source(s, default_prompt_file) for s in sources]
    combined = cutsets[0]
    for other in cutsets[1:]:
        combined = combined + other
    return combined
