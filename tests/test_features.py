import numpy as np
import pytest
import torch

from auden.audio.features import build_feature_extractor, extract_padded


def test_extract_padded_matches_one_by_one_extraction():
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 8000)]
    extractor = build_feature_extractor("whisper_fbank", num_mel_bins=80)
    feats, lens = extract_padded(extractor, waves, 16000)
    assert feats.shape == (2, 100, 80) and lens.tolist() == [100, 50]
    single = torch.from_numpy(extractor.extract(waves[1], 16000))
    torch.testing.assert_close(feats[1, :50], single)
    assert feats[1, 50:].abs().sum() == 0


def test_extract_padded_names_the_bad_waveform():
    extractor = build_feature_extractor("fbank")
    with pytest.raises(ValueError, match="waveform 1"):
        extract_padded(extractor, [np.zeros(1600, np.float32), np.zeros((2, 1600), np.float32)])
