"""Turn a data config into one lazy CutSet: read manifests lazily, tag, mix or concatenate.

Each cut is tagged with the task (and prompt file) of the source it came from, in
``cut.custom["task"]`` / ``cut.custom["prompt_file"]``, so that one manifest can serve
several tasks and the dataset knows what to do with every cut it receives.

    sources = load_data_config("configs/train_data.yaml")
    mixture = WeightedMixture.from_sources(sources, seed=42)
    mixture.set_epoch(3)
    cuts = CutSet(mixture)                 # epoch 3's cuts, lazy

Why a mixture of *infinitely repeated* sources: ``CutSet.mux`` of finite sources follows
the weights only until the smallest source runs out, and over a whole epoch the shares
become the sources' sizes (the bucketing sampler reads far enough ahead to show it).
Repeating every source forever keeps each draw at the weights; an epoch is then a fixed
number of drawn cuts (by default the sources' total), muxed with a seed that changes
with the epoch so that epochs differ.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator
from functools import partial
from itertools import islice
from pathlib import Path

from lhotse import CutSet, load_manifest_lazy
from lhotse.cut import Cut

from auden.data.config import DataSource
from auden.data.shar import list_shards

logger = logging.getLogger(__name__)


def tag_cut(cut: Cut, task: str, prompt_file: str | None) -> Cut:
    cut = cut.with_custom("task", task)
    if prompt_file:
        cut = cut.with_custom("prompt_file", prompt_file)
    return cut


def tag_source(cuts: CutSet, source: DataSource, default_prompt_file: str | Path | None) -> CutSet:
    """``cuts`` tagged with the task and prompt file of ``source``."""
    prompt_file = source.prompt_file or default_prompt_file
    return cuts.map(
        partial(tag_cut, task=source.task, prompt_file=str(prompt_file) if prompt_file else None)
    )


def read_source(source: DataSource, default_prompt_file: str | Path | None = None) -> CutSet:
    """The source's cuts, read lazily (a Shar folder shard after shard), tagged with their
    task and prompt file."""
    if source.shar_dir is not None:
        shards = list_shards(source.shar_dir)
        fields = {"cuts": [str(s.cuts) for s in shards]}
        for name in shards[0].fields:
            fields[name] = [str(s.fields[name]) for s in shards]
        return tag_source(CutSet.from_shar(fields=fields), source, default_prompt_file)
    try:
        cuts = load_manifest_lazy(source.manifest)
    except Exception as e:  # lhotse raises several types for unreadable manifests
        raise ValueError(f"cannot read manifest '{source.manifest}': {e}") from e
    if cuts is None:  # Lhotse's answer for a file without a single line
        raise ValueError(f"manifest '{source.manifest}' is empty (no cuts)")
    if not isinstance(cuts, CutSet):
        raise ValueError(
            f"manifest '{source.manifest}' holds a {type(cuts).__name__}, not a Lhotse CutSet"
        )
    _check_first_cut(cuts, source.manifest)
    return tag_source(cuts, source, default_prompt_file)


def source_size(source: DataSource) -> int:
    """Cuts in a source (a Shar folder's from its index, a manifest's line by line)."""
    if source.shar_dir is not None:
        return sum(s.num_cuts for s in list_shards(source.shar_dir))
    return count_cuts(source.manifest)


def _check_first_cut(cuts: CutSet, manifest: Path) -> None:
    """Fail now, naming the manifest, for what would otherwise skip every cut in training:
    no cuts at all, text that is not UTF-8, or a feature archive that is not there (a
    manifest made in another recipe or machine: relative paths are read from the cwd)."""
    try:
        first = next(iter(cuts), None)
    except UnicodeDecodeError as e:
        raise ValueError(f"manifest '{manifest}' is not valid UTF-8: {e}") from None
    except Exception as e:  # a corrupt gzip stream, a line that is not JSON, ...
        raise ValueError(f"cannot read manifest '{manifest}': {e}") from e
    if first is None:
        raise ValueError(f"manifest '{manifest}' holds no cuts")
    if first.has_features:
        storage = Path(first.features.storage_path)
        if not storage.exists():
            raise FileNotFoundError(
                f"manifest '{manifest}': the features of cut '{first.id}' are stored in "
                f"'{storage}', which does not exist here (relative paths are read from "
                f"'{Path.cwd()}')"
            )


def count_cuts(manifest: str | Path) -> int:
    """Cuts in a manifest, counted without parsing them (one line per cut in jsonl)."""
    path = Path(manifest)
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    return sum(1 for _ in load_manifest_lazy(path))


class WeightedMixture:
    """A lazy iterable of one epoch's cuts: every source repeated forever, drawn by weight.

    Each cut is drawn from source i with probability weight_i / sum(weights), however
    large or small the sources are; an epoch stops after ``cuts_per_epoch`` cuts. The
    draw order depends only on ``(seed, epoch)``, so resuming an epoch replays it exactly.
    ``set_epoch`` must be called before iterating (the sampler iterates in the main process).
    """

    def __init__(
        self, cutsets: list[CutSet], weights: list[float], seed: int, cuts_per_epoch: int
    ) -> None:
        if len(cutsets) != len(weights) or not cutsets:
            raise ValueError("a mixture needs one weight per source, and at least one source")
        if cuts_per_epoch <= 0:
            raise ValueError(
                f"data.cuts_per_epoch must be > 0 (0: the sources' total), got {cuts_per_epoch}"
            )
        self.cutsets = cutsets
        self.weights = weights
        self.seed = seed
        self.cuts_per_epoch = cuts_per_epoch
        self.epoch = 1

    @classmethod
    def from_sources(
        cls,
        sources: list[DataSource],
        seed: int,
        default_prompt_file: str | Path | None = None,
        cuts_per_epoch: int = 0,
    ) -> WeightedMixture:
        """``cuts_per_epoch`` 0: the sources' total number of cuts, counted once by reading
        the manifests through (set it to skip that on huge manifests)."""
        cutsets = [read_source(s, default_prompt_file) for s in sources]
        for s in sources:
            logger.info(
                "train source %s: %s (task %s, weight %g)", s.name, s.location, s.task, s.weight
            )
        total = cuts_per_epoch
        if not total:
            sizes = [source_size(s) for s in sources]
            for s, n in zip(sources, sizes):
                logger.info("train source %s: %d cuts", s.name, n)
            total = sum(sizes)
        logger.info("one training epoch: %d cuts drawn by weight", total)
        return cls(cutsets, [s.weight for s in sources], seed=seed, cuts_per_epoch=total)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_seed(self) -> int:
        return self.seed * 1_000_003 + self.epoch

    def __iter__(self) -> Iterator:
        # preserve_id: a cut keeps the id of its manifest line however often it comes back,
        # so errors and logs name a cut that can be found.
        repeated = [c.repeat(preserve_id=True) for c in self.cutsets]
        if len(repeated) == 1:
            drawn = repeated[0]
        else:
            drawn = CutSet.mux(*repeated, weights=self.weights, seed=self.epoch_seed())
        return islice(iter(drawn), self.cuts_per_epoch)

    def __len__(self) -> int:
        return self.cuts_per_epoch


def mix_sources(
    sources: list[DataSource],
    seed: int,
    default_prompt_file: str | Path | None = None,
    *,
    epoch: int = 1,
    cuts_per_epoch: int = 0,
) -> CutSet:
    """One epoch of all sources mixed by weight (see :class:`WeightedMixture`), lazy."""
    mixture = WeightedMixture.from_sources(sources, seed, default_prompt_file, cuts_per_epoch)
    mixture.set_epoch(epoch)
    return CutSet(mixture)


def concat_sources(
    sources: list[DataSource], default_prompt_file: str | Path | None = None
) -> CutSet:
    """All sources one after the other (validation: every cut exactly once)."""
    cutsets = [read_source(s, default_prompt_file) for s in sources]
    combined = cutsets[0]
    for other in cutsets[1:]:
        combined = combined + other
    return combined
