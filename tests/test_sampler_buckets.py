"""How many duration buckets the training sampler uses, and what that buys in padding."""

import sys
import warnings
from pathlib import Path

from lhotse import CutSet, MonoCut

from auden.data.config import SamplerConfig
from auden.data.sampler import build_sampler

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_sampler import fill, librispeech_like  # noqa: E402


def test_default_sampler_fills_97_percent_of_frames_on_a_librispeech_like_mix():
    warnings.filterwarnings("ignore", message=".*eagerly read CutSet.*")
    cuts = librispeech_like(20000)
    sampler = build_sampler(cuts, SamplerConfig(max_duration=600), seed=0)
    assert len(sampler.duration_bins) + 1 == 50
    real_fraction, _ = fill(sampler)
    assert real_fraction >= 0.97


def test_a_small_corpus_keeps_at_most_ten_buckets():
    cuts = CutSet.from_cuts(
        MonoCut(id=f"c{i}", start=0.0, duration=1.0 + 0.05 * i, channel=0) for i in range(40)
    )
    sampler = build_sampler(cuts, SamplerConfig(max_duration=10), seed=0)
    assert len(sampler.duration_bins) + 1 <= 10
