"""Zipformer encoder: exact lengths, padding invariance, presets, save/load."""

import pytest
import torch

from auden.models.encoders.base import encoder_class
from auden.models.encoders.zipformer import (
    PRESETS,
    ZipformerConfig,
    ZipformerEncoder,
    resolve_zipformer_config,
    zipformer_output_lengths,
)

# A structurally complete Zipformer (six stacks, factors 1,2,4,8,4,2) that is nearly free
# to run, so that real forwards can cover every input length.
MICRO = ZipformerConfig(
    num_layers=(1, 1, 1, 1, 1, 1),
    encoder_dims=(8, 8, 12, 16, 12, 8),
    feedforward_dims=(16, 16, 16, 16, 16, 16),
    num_heads=(1, 1, 1, 1, 1, 1),
    cnn_kernel_sizes=(3, 3, 3, 3, 3, 3),
    query_head_dim=4,
    value_head_dim=4,
    pos_head_dim=2,
    pos_dim=4,
    frontend_channels=(1, 1, 1),
    dropout=0.0,
)


def test_output_length_formula_is_ceil_of_a_quarter():
    lens = torch.arange(1, 2001)
    expected = torch.tensor([-(-t // 4) for t in range(1, 2001)])
    assert torch.equal(zipformer_output_lengths(lens), expected)
    assert int(zipformer_output_lengths(torch.tensor([1])).item()) == 1


def test_real_forward_lengths_match_formula_for_a_sample_of_lengths_up_to_2000():
    torch.manual_seed(0)
    encoder = ZipformerEncoder(MICRO).eval()
    sample = torch.randint(65, 2001, (48,)).sort().values.tolist() + [2000]
    with torch.no_grad():
        # Every residue of the total stride, unpadded: the frame count itself must match.
        for t in range(1, 65):
            out = encoder(torch.randn(1, t, 80), torch.tensor([t]))
            assert out.frames.shape[1] == int(encoder.output_lengths(torch.tensor([t]))[0]), t
        # Longer lengths as rows of padded batches: the returned lens must match too.
        for i in range(0, len(sample), 7):
            lens = torch.tensor(sample[i : i + 7])
            out = encoder(torch.randn(len(lens), int(lens.max()), 80), lens)
            expected = encoder.output_lengths(lens)
            assert torch.equal(out.lens, expected), f"input lengths {lens.tolist()}"
            assert out.frames.shape[1] == int(expected.max())


def test_a_clip_padded_in_a_batch_gives_the_same_frames_as_the_clip_alone():
    torch.manual_seed(0)
    encoder = ZipformerEncoder("tiny").eval()
    lens = torch.tensor([613, 257, 9, 130])
    features = torch.randn(4, 613, 80)
    # Padding holds garbage, not zeros: it must not matter at all.
    for i, n in enumerate(lens.tolist()):
        features[i, n:] = 1e3 * torch.randn(613 - n, 80)
    with torch.no_grad():
        batched = encoder(features, lens)
        for i, n in enumerate(lens.tolist()):
            alone = encoder(features[i : i + 1, :n], lens[i : i + 1])
            valid = int(batched.lens[i])
            assert alone.frames.shape[1] == valid
            diff = (alone.frames[0] - batched.frames[i, :valid]).abs().max().item()
            assert diff <= 1e-5, f"clip {i} (length {n}): max abs diff {diff}"
            assert batched.frames[i, valid:].abs().max().item() == 0.0 if valid < 154 else True


def test_tiny_encoder_trains_and_reports_its_interface():
    torch.manual_seed(0)
    encoder = ZipformerEncoder("tiny")
    assert encoder.output_dim == 192 and encoder.frame_rate == 25.0
    out = encoder(torch.randn(2, 120, 80), torch.tensor([120, 77]))
    assert out.frames.shape == (2, 30, 192)
    out.frames.pow(2).mean().backward()
    missing = [n for n, p in encoder.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert encoder_class("zipformer") is ZipformerEncoder


@pytest.mark.parametrize(
    "preset, low, high",
    # The paper's encoders (table 1, which also counts a ~1-2M transducer decoder/joiner):
    # S 23.3M, M 65.6M, L 148.4M.
    [("xs", 1.5e6, 3e6), ("tiny", 2e6, 6e6), ("small", 20e6, 24e6), ("medium", 60e6, 67e6), ("large", 140e6, 150e6)],
)
def test_preset_parameter_counts(preset, low, high):
    with torch.device("meta"):
        encoder = ZipformerEncoder(preset)
    assert low <= encoder.num_params() <= high, encoder.num_params()


def test_save_and_load_round_trip_gives_identical_frames(tmp_path):
    torch.manual_seed(0)
    encoder = ZipformerEncoder("tiny").eval()
    encoder.save_pretrained(tmp_path / "enc")
    loaded = ZipformerEncoder.from_pretrained(tmp_path / "enc").eval()
    assert loaded.config == encoder.config
    x, lens = torch.randn(2, 90, 80), torch.tensor([90, 41])
    with torch.no_grad():
        assert torch.equal(encoder(x, lens).frames, loaded(x, lens).frames)
    assert resolve_zipformer_config(tmp_path / "enc") == encoder.config


def test_bad_configs_and_inputs_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="num_layers"):
        ZipformerConfig(num_layers=(1, 1))
    with pytest.raises(ValueError, match="neither a preset"):
        resolve_zipformer_config("huge")
    with pytest.raises(ValueError, match="unknown zipformer config key"):
        ZipformerConfig.from_dict({"encoder_dim": 3})
    encoder = ZipformerEncoder(MICRO)
    with pytest.raises(ValueError, match=r"\[B, T, 80\]"):
        encoder(torch.randn(1, 10, 40), torch.tensor([10]))
    with pytest.raises(ValueError, match="feature_lens"):
        encoder(torch.randn(1, 10, 80), torch.tensor([11]))
    with pytest.raises(FileNotFoundError, match="config.json"):
        ZipformerEncoder.from_pretrained(tmp_path)
    assert set(PRESETS) == {
        "xs", "tiny", "small", "medium", "large", "icefall-small", "icefall-medium", "icefall-large"
    }
    with pytest.raises(ValueError, match="'flavor' is 'k2'"):
        ZipformerConfig(flavor="k2")
