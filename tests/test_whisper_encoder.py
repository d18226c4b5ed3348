import numpy as np
import pytest
import torch
from transformers import WhisperConfig, WhisperModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder as HfWhisperEncoder

from auden.audio.features import build_feature_extractor, extract_padded
from auden.models.encoders.base import encoder_class
from auden.models.encoders.whisper import PRESETS, WhisperEncoder, whisper_pad_value


def _seven_second_features():
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(7 * 16000).astype(np.float32) * 0.1
    return extract_padded(build_feature_extractor("whisper_fbank", 80), [wave])


def test_seven_second_clip_unpadded_has_350_frames():
    torch.manual_seed(0)
    feats, lens = _seven_second_features()
    assert lens.tolist() == [700]
    encoder = encoder_class("whisper")("tiny-test").eval()
    out = encoder(feats, lens)
    assert out.frames.shape == (1, 350, 64) and out.lens.tolist() == [350]
    assert encoder.frame_rate == 50.0


def test_pad_to_30s_equals_transformers_whisper_encoder_on_padded_input():
    torch.manual_seed(0)
    feats, lens = _seven_second_features()
    encoder = WhisperEncoder("tiny-test", pad_to_30s=True).eval()
    out = encoder(feats, lens)
    assert out.frames.shape == (1, 1500, 64) and out.lens.tolist() == [350]

    reference = HfWhisperEncoder(encoder.config).eval()
    reference.load_state_dict(encoder.encoder.state_dict())
    padded = torch.full((1, 80, 3000), float(whisper_pad_value(feats, lens)))
    padded[:, :, :700] = feats.transpose(1, 2)
    expected = reference(input_features=padded).last_hidden_state
    torch.testing.assert_close(out.frames, expected)


def test_whisper_pad_value_is_the_log_mel_floor_of_zero_padding():
    # Whisper's own recipe: pad the waveform with zeros to 30 s, then take log-mel.
    rng = np.random.default_rng(1)
    wave = rng.standard_normal(16000).astype(np.float32) * 0.1
    extractor = build_feature_extractor("whisper_fbank", 80)
    feats, lens = extract_padded(extractor, [wave])
    long, _ = extract_padded(extractor, [np.concatenate([wave, np.zeros(16000, np.float32)])])
    torch.testing.assert_close(
        long[0, 150:190], torch.full((40, 80), float(whisper_pad_value(feats, lens)))
    )


def test_clip_gives_the_same_frames_alone_and_in_a_batch():
    torch.manual_seed(0)
    encoder = WhisperEncoder("tiny-test").eval()
    feats = torch.randn(3, 301, 80)
    lens = torch.tensor([301, 157, 20])
    batched = encoder(feats, lens)
    assert batched.lens.tolist() == [151, 79, 10]
    for i in range(3):
        alone = encoder(feats[i : i + 1, : lens[i]], lens[i : i + 1])
        torch.testing.assert_close(batched.frames[i, : lens[i].add(1) // 2], alone.frames[0])
    assert batched.frames[2, 10:].abs().sum() == 0


def test_output_lengths_follow_the_stride_two_conv():
    encoder = WhisperEncoder("tiny-test").eval()
    for n in (1, 2, 3, 4, 5, 699, 700, 701):
        out = encoder(torch.randn(1, n, 80), torch.tensor([n]))
        assert (
            out.frames.shape[1]
            == out.lens.item()
            == encoder.output_lengths(torch.tensor([n])).item()
        )


def test_save_and_from_pretrained_round_trip(tmp_path):
    torch.manual_seed(0)
    encoder = WhisperEncoder("tiny-test").eval()
    encoder.save_pretrained(tmp_path / "enc")
    loaded = WhisperEncoder.from_pretrained(tmp_path / "enc").eval()
    feats, lens = torch.randn(2, 50, 80), torch.tensor([50, 31])
    torch.testing.assert_close(encoder(feats, lens).frames, loaded(feats, lens).frames)
    assert not loaded.pad_to_30s


def test_loads_only_the_encoder_from_a_transformers_whisper_folder(tmp_path):
    torch.manual_seed(0)
    config = WhisperConfig(
        **PRESETS["tiny-test"],
        decoder_layers=1,
        decoder_attention_heads=4,
        decoder_ffn_dim=64,
    )
    whisper = WhisperModel(config).eval()
    whisper.save_pretrained(tmp_path / "whisper")
    encoder = WhisperEncoder.from_pretrained(tmp_path / "whisper", pad_to_30s=True).eval()
    feats = torch.randn(1, 3000, 80)
    expected = whisper.encoder(input_features=feats.transpose(1, 2)).last_hidden_state
    torch.testing.assert_close(encoder(feats, torch.tensor([3000])).frames, expected)


def test_bad_input_is_named():
    encoder = WhisperEncoder("tiny-test")
    with pytest.raises(ValueError, match=r"\[B, T, 80\]"):
        encoder(torch.randn(1, 10, 128), torch.tensor([10]))
    with pytest.raises(ValueError, match="at most 3000 frames"):
        encoder(torch.randn(1, 3001, 80), torch.tensor([3001]))
    with pytest.raises(ValueError, match="neither a preset"):
        WhisperEncoder("no-such-preset")
