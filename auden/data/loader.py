"""Build the training and validation dataloaders from the `data` config.

    train = TrainData(cfg.data, seed=42, rank=rank, world_size=world_size, hints=hints)
    for batch in train.loader(epoch=1, skip_batches=0): ...

``ModelHints`` is what the model tells the data pipeline: whether a target fits a clip
(a callable) and how to count target tokens, for the "clip too short" filter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from lhotse import CutSet, load_manifest
from lhotse.dataset import SpecAugment
from torch.utils.data import DataLoader

from auden.data.config import DataConfig, load_data_config
from auden.data.dataset import AudioLlmDataset, BatchAugment
from auden.data.filters import CountTokensFn, CutFilter, FilterSpec, FitsFn
from auden.data.inputs import FeatureInput, OnTheFlyInput, PrecomputedInput, make_feature_extractor
from auden.data.mixing import WeightedMixture, concat_sources
from auden.data.sampler import ResumableSampler, build_sampler

logger = logging.getLogger(__name__)

SPEED_FACTORS = (0.9, 1.0, 1.1)


@dataclass(frozen=True)
class ModelHints:
    fits: FitsFn | None = None
    count_tokens: CountTokensFn | None = None


def _value(x) -> str:
    return getattr(x, "value", x)


def build_inputs(cfg: DataConfig) -> FeatureInput:
    if cfg.on_the_fly_feats:
        extractor = make_feature_extractor(_value(cfg.feature), cfg.num_mel_bins)
        return OnTheFlyInput(extractor, pad_to_30s=cfg.pad_to_30s)
    return PrecomputedInput(
        pad_to_30s=cfg.pad_to_30s, kind=_value(cfg.feature), num_mel_bins=cfg.num_mel_bins
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


class TrainData:
    """The training split: mixed sources, filtered, bucketed per rank, resumable.

    Sources are drawn by weight from infinite repetitions of each (``WeightedMixture``);
    an epoch is ``data.cuts_per_epoch`` drawn cuts (default: the sources' total), drawn
    with a seed that depends on the epoch. The same holds when ``trainer.num_steps`` bounds
    training instead of epochs.
    """

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
        try:
            self.mixture = WeightedMixture.from_sources(
                self.sources,
                seed=seed,
                default_prompt_file=prompt_file or None,
                cuts_per_epoch=cfg.cuts_per_epoch,
            )
            sampler = build_sampler(
                CutSet(self.mixture).filter(self.filter),
                cfg.sampler,
                seed=seed,
                rank=rank,
                world_size=world_size,
            )
        except ValueError as e:
            raise ValueError(
                f"data.train_data_config '{cfg.train_data_config}': {e} "
                f"(dropped by the filters: {dict(self.filter.dropped) or 'none'})"
            ) from e
        self.sampler = ResumableSampler(sampler)
        self.dataset = AudioLlmDataset(
            build_inputs(cfg),
            seed=seed,
            training=True,
            augment=build_augment(cfg),
            bad_cut=_value(cfg.bad_cut),
        )
        self.num_workers = cfg.num_workers
        self.seed = seed

    def loader(self, epoch: int, skip_batches: int = 0) -> DataLoader:
        """This rank's batches of ``epoch``, less the first ``skip_batches`` (resume)."""
        self.mixture.set_epoch(epoch)  # the sampler reads the mixture in this process
        self.sampler.set_epoch(epoch)
        self.sampler.skip(skip_batches)
        self.dataset.set_epoch(epoch)
        return _loader(self.dataset, self.sampler, self.num_workers, seed=self.seed + epoch)


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
        build_inputs(cfg), seed=seed, training=True, bad_cut=_value(cfg.bad_cut)
    )
    return _loader(dataset, sampler, min(cfg.num_workers, 1), seed=seed)
