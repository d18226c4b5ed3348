"""Build the training and validation dataloaders from the `data` config.

    train = build_train_data(cfg.data, seed=42, rank=rank, world_size=world_size, hints=hints)
    for batch in train.loader(epoch=1, skip_batches=0): ...

Two ways to read the training split: :class:`TrainData` (one mixture, bucketed and dealt
to ranks batch by batch; a resume replays the epoch's cut metadata) and
:class:`ShardedTrainData` (every rank and worker reads its own shards; a resume replays
one segment), taken with ``data.sharded=true`` or any ``shar_dir`` source.

``ModelHints`` is what the model tells the data pipeline: whether a target fits a clip
(a callable) and how to count target tokens, for the "clip too short" filter; and whether
it reads audio at all (a text LLM does not: no features are loaded for it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from lhotse import CutSet, load_manifest
from lhotse.dataset import SpecAugment
from torch.utils.data import DataLoader

from auden.audio.features import build_feature_extractor
from auden.data.config import DataConfig, load_data_config
from auden.data.dataset import AudioLlmDataset, BatchAugment
from auden.data.filters import CountTokensFn, CutFilter, FilterSpec, FitsFn
from auden.data.inputs import FeatureInput, NoAudioInput, OnTheFlyInput, PrecomputedInput
from auden.data.mixing import WeightedMixture, concat_sources
from auden.data.sampler import ResumableSampler, build_sampler
from auden.data.sharded import PositionTracker, ShardedStream, ShardPlan
from auden.types import config_value

logger = logging.getLogger(__name__)

SPEED_FACTORS = (0.9, 1.0, 1.1)


@dataclass(frozen=True)
class ModelHints:
    fits: FitsFn | None = None
    count_tokens: CountTokensFn | None = None
    reads_audio: bool = True


def build_inputs(cfg: DataConfig) -> FeatureInput:
    """How features are read. Training and evaluation fill ``cfg``'s feature settings from
    the model first (``follow_model``); unset, precomputed features are read as stored and
    on-the-fly ones are 80-bin fbank (a data pipeline used without a model)."""
    if cfg.on_the_fly_feats:
        kind = config_value(cfg.feature) if cfg.feature is not None else "fbank"
        extractor = build_feature_extractor(kind, num_mel_bins=cfg.num_mel_bins or 80)
        return OnTheFlyInput(extractor, pad_to_30s=bool(cfg.pad_to_30s))
    return PrecomputedInput(
        pad_to_30s=bool(cfg.pad_to_30s),
        kind=config_value(cfg.feature) if cfg.feature is not None else None,
        num_mel_bins=cfg.num_mel_bins,
    )


def build_augment(cfg: DataConfig) -> BatchAugment:
    aug = cfg.augment
    if (aug.speed_perturb or aug.noise) and not cfg.on_the_fly_feats:
        raise ValueError(
            "data.augment.speed_perturb and data.augment.noise change the audio: "
            "they need data.on_the_fly_feats=true"
        )
    noise_cuts = None
    if aug.noise:
        if not Path(aug.noise).exists():
            raise FileNotFoundError(f"data.augment.noise: manifest '{aug.noise}' not found")
        noise_cuts = load_manifest(aug.noise)
    return BatchAugment(
        spec_augment=SpecAugment() if aug.spec_augment else None,
        speed_factors=SPEED_FACTORS if aug.speed_perturb else (),
        noise_cuts=noise_cuts,
    )


def _filter(cfg: DataConfig, hints: ModelHints) -> CutFilter:
    spec = FilterSpec(
        min_duration=cfg.filters.min_duration,
        max_duration=cfg.filters.max_duration,
        min_frames_per_token=cfg.filters.min_frames_per_token,
    )
    return CutFilter(spec, fits=hints.fits, count_tokens=hints.count_tokens)


def _loader(dataset, sampler, num_workers: int, seed: int) -> DataLoader:
    return DataLoader(
        dataset,
        sampler=sampler,
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=False,  # workers must see each epoch's dataset.epoch
        # DataLoader draws its workers' base seed from this generator; with the default
        # (torch's global one) starting an iterator would shift the training RNG stream.
        generator=torch.Generator().manual_seed(seed),
    )


def _train_dataset(cfg: DataConfig, seed: int, reads_audio: bool = True) -> AudioLlmDataset:
    return AudioLlmDataset(
        build_inputs(cfg) if reads_audio else NoAudioInput(),
        seed=seed,
        training=True,
        augment=build_augment(cfg) if reads_audio else BatchAugment(),
        bad_cut=config_value(cfg.bad_cut),
    )


class _TrainSplit:
    """What both ways of reading the training split share: sources, filters, dataset."""

    def __init__(
        self,
        cfg: DataConfig,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        prompt_file: str | None = None,
        hints: ModelHints = ModelHints(),
    ) -> None:
        if not cfg.train_data_config:
            raise ValueError("data.train_data_config is empty: name a training data config")
        self.sources = load_data_config(cfg.train_data_config)
        self.filter = _filter(cfg, hints)
        self.dataset = _train_dataset(cfg, seed, hints.reads_audio)
        self.num_workers = cfg.num_workers
        self.seed = seed
        self._build(cfg, rank=rank, world_size=world_size, prompt_file=prompt_file or None)

    def _build(self, cfg: DataConfig, *, rank: int, world_size: int, prompt_file: str | None):
        raise NotImplementedError


class TrainData(_TrainSplit):
    """The training split: mixed sources, filtered, bucketed per rank, resumable.

    Sources are drawn by weight from infinite repetitions of each (``WeightedMixture``);
    an epoch is ``data.cuts_per_epoch`` drawn cuts (default: the sources' total), drawn
    with a seed that depends on the epoch. The same holds when ``trainer.num_steps`` bounds
    training instead of epochs.
    """

    def _build(self, cfg: DataConfig, *, rank: int, world_size: int, prompt_file: str | None):
        try:
            self.mixture = WeightedMixture.from_sources(
                self.sources,
                seed=self.seed,
                default_prompt_file=prompt_file,
                cuts_per_epoch=cfg.cuts_per_epoch,
            )
            sampler = build_sampler(
                CutSet(self.mixture).filter(self.filter),
                cfg.sampler,
                seed=self.seed,
                rank=rank,
                world_size=world_size,
            )
        except ValueError as e:
            raise ValueError(
                f"data.train_data_config '{cfg.train_data_config}': {e} "
                f"(dropped by the filters: {dict(self.filter.dropped) or 'none'})"
            ) from e
        self.sampler = ResumableSampler(sampler)

    def loader(self, epoch: int, skip_batches: int = 0) -> DataLoader:
        """This rank's batches of ``epoch``, less the first ``skip_batches`` (resume)."""
        self.mixture.set_epoch(epoch)  # the sampler reads the mixture in this process
        self.sampler.set_epoch(epoch)
        self.sampler.skip(skip_batches)
        self.dataset.set_epoch(epoch)
        return _loader(self.dataset, self.sampler, self.num_workers, seed=self.seed + epoch)

    def state_dict(self) -> dict | None:
        """Nothing beyond the batch count the trainer keeps: a resume replays the epoch."""
        return None

    def load_state_dict(self, state: dict | None) -> None:
        pass


class ShardedTrainData(_TrainSplit):
    """The training split read shard by shard: each rank and dataloader worker reads its own
    shards (see :mod:`auden.data.sharded`); ``state_dict`` says where each reader stands."""

    def _build(self, cfg: DataConfig, *, rank: int, world_size: int, prompt_file: str | None):
        workers = max(1, cfg.num_workers)
        try:
            self.plan = ShardPlan.build(
                self.sources,
                num_readers=world_size * workers,
                seed=self.seed,
                segment_cuts=cfg.segment_cuts,
                jsonl_shard_cuts=cfg.jsonl_shard_cuts,
                cuts_per_epoch=cfg.cuts_per_epoch,
            )
        except ValueError as e:
            raise ValueError(f"data.train_data_config '{cfg.train_data_config}': {e}") from e
        logger.info("one training epoch: %d cuts drawn by weight, read by %d readers "
                    "(%d ranks x %d workers)", self.plan.cuts_per_epoch,
                    self.plan.num_readers, world_size, workers)
        self.stream = ShardedStream(
            self.plan, self.dataset, self.filter, cfg.sampler, rank=rank,
            num_workers=cfg.num_workers, default_prompt_file=prompt_file,
        )
        self._resume: dict | None = None
        self._tracker: PositionTracker | None = None

    def loader(self, epoch: int, skip_batches: int = 0) -> PositionTracker:
        """This rank's batches of ``epoch``; ``skip_batches`` > 0 resumes from the
        positions given to ``load_state_dict``."""
        self.stream.set_epoch(epoch)
        self.dataset.set_epoch(epoch)
        resume, self._resume = self._resume, None
        if skip_batches:
            if resume is None or resume["epoch"] != epoch:
                raise ValueError(
                    f"resuming epoch {epoch} after {skip_batches} batches needs the sharded "
                    "readers' positions, and the checkpoint holds none for this epoch"
                )
            self.stream.resume(resume["positions"], resume["next_local"])
        loader = DataLoader(
            self.stream,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=False,
            generator=torch.Generator().manual_seed(self.seed + epoch),
        )
        self._tracker = PositionTracker(loader, self.stream)
        return self._tracker

    def state_dict(self) -> dict | None:
        return self._tracker.state_dict() if self._tracker is not None else None

    def load_state_dict(self, state: dict | None) -> None:
        """Where this rank's readers stood (from a checkpoint); used by the next ``loader``."""
        if state is None:
            return
        if state["num_readers"] != self.plan.num_readers:
            raise ValueError(
                f"the checkpoint was written with {state['num_readers']} sharded readers "
                f"(ranks x data.num_workers), this run has {self.plan.num_readers}: resume "
                "with the same number of ranks and data.num_workers"
            )
        self._resume = state


def build_train_data(cfg: DataConfig, **kwargs) -> TrainData | ShardedTrainData:
    """Sharded reading when ``data.sharded`` is set or a source is a Shar folder."""
    if cfg.sharded or any(s.shar_dir is not None for s in load_data_config(cfg.train_data_config)):
        return ShardedTrainData(cfg, **kwargs)
    return TrainData(cfg, **kwargs)


def build_valid_loader(
    cfg: DataConfig,
    *,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    prompt_file: str | None = None,
    hints: ModelHints = ModelHints(),
) -> DataLoader | None:
    """Every validation cut once (split over ranks), no augmentation; None if not configured."""
    if not cfg.valid_data_config:
        return None
    sources = load_data_config(cfg.valid_data_config)
    cuts = concat_sources(sources, default_prompt_file=prompt_file or None)
    sampler = build_sampler(
        cuts.filter(_filter(cfg, hints)),
        cfg.sampler,
        seed=seed,
        rank=rank,
        world_size=world_size,
        shuffle=False,
    )
    dataset = AudioLlmDataset(
        build_inputs(cfg) if hints.reads_audio else NoAudioInput(),
        seed=seed,
        training=True,
        bad_cut=config_value(cfg.bad_cut),
    )
    return _loader(dataset, sampler, min(cfg.num_workers, 1), seed=seed)
