"""Data configs: the yaml list that says which manifests to train on, for which task.

A training data config mixes sources by weight; a validation one lists sources to
concatenate; a test one names each source so scores can be reported per set::

    - {manifest: data/fbank/mini_en_cuts_train.jsonl.gz, task: transcribe, weight: 2}
    - {manifest: data/fbank/mini_en_cuts_train.jsonl.gz, task: describe, weight: 1,
       prompt_file: configs/prompts/describe.txt}
    - {shar_dir: data/shar/train, task: transcribe, weight: 1}   # Lhotse Shar shards

Relative paths are tried against the working directory first, then against the
folder of the data config, so a config works both from the recipe folder and elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

import yaml

from auden.audio.features import FeatureKind, FeatureSpec
from auden.data.tasks import get_task

_KEYS = {"manifest", "shar_dir", "task", "weight", "prompt_file", "name"}


@dataclass(frozen=True)
class DataSource:
    """One manifest, or one Shar folder (``shar_dir``), used for one task."""

    manifest: Path | None
    task: str
    weight: float = 1.0
    prompt_file: Path | None = None
    name: str = ""
    shar_dir: Path | None = None

    @property
    def location(self) -> Path:
        """The manifest or Shar folder, for messages."""
        return self.manifest if self.manifest is not None else self.shar_dir


def _resolve(value: str, config_file: Path, key: str, index: int) -> Path:
    path = Path(value).expanduser()
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = [Path.cwd() / path, config_file.parent / path]
    for candidate in candidates:
        if candidate.exists():
            return candidate.resolve()
    tried = ", ".join(f"'{c}'" for c in candidates)
    raise FileNotFoundError(
        f"data config '{config_file}', entry {index}: {key} '{value}' not found (tried {tried})"
    )


def load_data_config(path: str | Path) -> list[DataSource]:
    """Read and check a data config; every manifest and prompt file must exist."""
    config_file = Path(path)
    if not config_file.is_file():
        raise FileNotFoundError(f"data config '{config_file}' not found")
    entries = yaml.safe_load(config_file.read_text())
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"data config '{config_file}' must be a non-empty yaml list")
    sources = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"data config '{config_file}', entry {i}: expected a mapping")
        unknown = set(entry) - _KEYS
        if unknown:
            raise ValueError(
                f"data config '{config_file}', entry {i}: unknown key(s) {sorted(unknown)}; "
                f"allowed: {sorted(_KEYS)}"
            )
        if "task" not in entry:
            raise ValueError(f"data config '{config_file}', entry {i}: 'task' is missing")
        if ("manifest" in entry) == ("shar_dir" in entry):
            raise ValueError(
                f"data config '{config_file}', entry {i}: name exactly one of 'manifest' "
                "and 'shar_dir'"
            )
        task = get_task(str(entry["task"])).name
        weight = float(entry.get("weight", 1.0))
        if weight <= 0:
            raise ValueError(
                f"data config '{config_file}', entry {i}: weight must be > 0, got {weight}"
            )
        key = "manifest" if "manifest" in entry else "shar_dir"
        location = _resolve(str(entry[key]), config_file, key, i)
        prompt_file = entry.get("prompt_file")
        sources.append(
            DataSource(
                manifest=location if key == "manifest" else None,
                shar_dir=location if key == "shar_dir" else None,
                task=task,
                weight=weight,
                prompt_file=_resolve(str(prompt_file), config_file, "prompt_file", i)
                if prompt_file
                else None,
                name=str(entry.get("name") or f"{location.name.split('.')[0]}:{task}"),
            )
        )
    return sources


# ---- the `data` node of the train config (Hydra structured config) ----


class BadCutMode(str, Enum):
    skip = "skip"  # drop the cut from its batch, count it and log its id
    error = "error"  # stop with an error naming the cut


@dataclass
class SamplerConfig:
    max_duration: float = 200.0  # seconds of audio per batch and rank
    max_cuts: int | None = None  # at most this many cuts per batch and rank (None: no limit)
    # 50 buckets: 97.7% of the frames in a batch are real audio on a LibriSpeech-like mix,
    # against 90.3% with 10 and 96.4% with 30 (benchmarks/bench_sampler.py).
    num_buckets: int = 50
    shuffle: bool = True
    drop_last: bool = False


@dataclass
class AugmentConfig:
    spec_augment: bool = True
    speed_perturb: bool = False  # factors 0.9/1.0/1.1; needs on_the_fly_feats
    noise: str = ""  # a cuts manifest of noise clips mixed in at 10-20 dB SNR; needs on_the_fly_feats


@dataclass
class FilterConfig:
    min_duration: float = 0.3
    max_duration: float = 30.0
    min_frames_per_token: float = 0.0  # feature frames per target token (0: ask the model only)


@dataclass
class DataConfig:
    train_data_config: str = ""
    valid_data_config: str = ""
    # What the features are is the model's to say (model.features): leave these unset
    # (null) to follow it; a value that differs from the model is an error at start-up.
    feature: FeatureKind | None = None
    num_mel_bins: int | None = None
    pad_to_30s: bool | None = None  # Whisper encoders expect 30 s (3000 frames)
    on_the_fly_feats: bool = False
    num_workers: int = 2
    # Each rank and dataloader worker reads its own shards (always on with a shar_dir
    # source): resuming replays one segment, not the epoch. See auden/data/sharded.py.
    sharded: bool = False
    segment_cuts: int = 2000  # sharded: cuts bucketed together (what a resume replays)
    jsonl_shard_cuts: int = 10000  # sharded: a jsonl source is split into shards of this size
    # cuts drawn (by weight, before the filters) per training epoch; 0: the sources' total
    cuts_per_epoch: int = 0
    bad_cut: BadCutMode = BadCutMode.skip
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)


def follow_model(cfg: DataConfig, features: FeatureSpec | None) -> DataConfig:
    """``cfg`` with the feature settings of the model, or an error if one set differs.

    ``features=None`` (a model that reads no audio) leaves ``cfg`` as it is.
    """
    if features is None:
        return cfg
    features.check(kind=cfg.feature, num_mel_bins=cfg.num_mel_bins, pad_to_30s=cfg.pad_to_30s)
    return replace(
        cfg,
        feature=FeatureKind(features.kind),
        num_mel_bins=features.num_mel_bins,
        pad_to_30s=features.pad_to_30s,
    )
