import numpy as np
import pytest
import torch
from lhotse import Fbank, FbankConfig

from auden.audio.fbank import FastFbank
from auden.audio.features import build_feature_extractor

SR = 16000


def speechlike(seconds: float, seed: int, level: float = 0.1, dc: float = 0.0) -> np.ndarray:
    """A gliding harmonic voice with noise: energy spread over the whole mel range."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(120 * (1 + 0.2 * np.sin(2 * np.pi * 0.5 * t))) / SR
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    noise = rng.normal(0, 0.02, t.shape)
    return (level * (voice + noise) + dc).astype(np.float32)


CLIPS = {
    "one frame exactly (400 samples)": speechlike(400 / SR, 0),
    "401 samples": speechlike(401 / SR, 1),
    "1 s": speechlike(1.0, 2),
    "12345 samples": speechlike(12345 / SR, 3),
    "7.3 s, quiet": speechlike(7.3, 4, level=1e-4),
    "3 s with a DC offset": speechlike(3.0, 5, dc=0.3),
    "2 s of digital silence": np.zeros(2 * SR, np.float32),
}


@pytest.mark.parametrize("name", list(CLIPS))
def test_fast_fbank_equals_lhotse_fbank_within_1e_3(name):
    samples = CLIPS[name]
    ours = FastFbank().extract(samples, SR)
    theirs = Fbank().extract(samples, SR)
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float32
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= 1e-3, name


def test_default_extractor_is_the_fast_one_and_stays_a_lhotse_fbank():
    extractor = build_feature_extractor("fbank", 80)
    assert isinstance(extractor, FastFbank) and isinstance(extractor, Fbank)
    # Manifests name Lhotse's extractor: stored features stay readable without auden.
    assert extractor.name == "kaldi-fbank"
    assert extractor.feature_dim(SR) == 80 and extractor.frame_shift == 0.01


def test_tensor_in_tensor_out_and_one_channel_rows():
    samples = CLIPS["1 s"]
    fbank = FastFbank()
    out = fbank.extract(torch.from_numpy(samples), SR)
    assert torch.is_tensor(out) and out.shape == (100, 80)
    np.testing.assert_allclose(fbank.extract(samples[None, :], SR), out.numpy(), atol=1e-6)


def test_batch_features_equal_one_clip_at_a_time():
    clips = [CLIPS["1 s"], CLIPS["12345 samples"], CLIPS["3 s with a DC offset"]]
    fbank = FastFbank()
    batch = fbank.extract_batch(clips, sampling_rate=SR)
    for clip, feats in zip(clips, batch):
        np.testing.assert_array_equal(feats, fbank.extract(clip, SR))


def test_settings_outside_the_fast_path_use_lhotse_unchanged():
    config = FbankConfig(use_energy=True)
    samples = CLIPS["1 s"]
    np.testing.assert_array_equal(
        FastFbank(config).extract(samples, SR),
        Fbank(FbankConfig(use_energy=True)).extract(samples, SR),
    )


def test_wrong_sampling_rate_is_refused_naming_both_rates():
    with pytest.raises(ValueError, match="16000 Hz.*8000 Hz"):
        FastFbank().extract(CLIPS["1 s"], 8000)
