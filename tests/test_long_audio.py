"""Audio longer than the encoder's window is encoded window by window and joined, not cut."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_fixtures import export_tiny_model, no_special, tone, write_wav

from auden import pipeline
from auden.inference.long_audio import Windowing, encode_clips


@pytest.fixture(scope="module")
def p(tmp_path_factory):
    return pipeline("audio-text-to-text", model=export_tiny_model(tmp_path_factory.mktemp("long")))


def features(p, seconds: float, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    samples = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
    return torch.from_numpy(np.asarray(p.extractor.extract(samples, 16000)))


def test_windows_cover_the_clip_with_the_overlap_and_end_at_its_end():
    w = Windowing(window_frames=3000, overlap_frames=100)
    spans = w.spans(18000)  # 3 minutes
    assert spans[0][0] == 0 and spans[-1][1] == 18000
    assert all(e - s == 3000 for s, e in spans)
    assert all(b[0] == a[1] - 100 for a, b in zip(spans[:-2], spans[1:-1]))
    assert all(b[0] <= a[1] - 100 for a, b in zip(spans, spans[1:]))
    assert w.spans(2999) == [(0, 2999)]


def test_whisper_window_is_30_s_and_a_longer_one_is_refused(p):
    encoder = p.model.audio_encoder
    assert Windowing.for_encoder(encoder).window_frames == 3000
    with pytest.raises(ValueError, match=r"window_s 40 is longer than the whisper encoder.*30 s"):
        Windowing.for_encoder(encoder, window_s=40)


def test_windows_without_overlap_join_to_each_window_encoded_alone(p):
    feats = features(p, 6.0)  # three whole windows
    windowing = Windowing(window_frames=200, overlap_frames=0)
    assert len(windowing.spans(feats.shape[0])) == 3
    joined = encode_clips(p.model, [feats], windowing)[0]
    alone = [
        p.model.encode_audio(feats[s:e][None], torch.tensor([e - s]))[0][0]
        for s, e in windowing.spans(feats.shape[0])
    ]
    torch.testing.assert_close(joined, torch.cat(alone, 0))


def test_overlapping_windows_give_as_many_frames_as_the_whole_clip(p):
    feats = features(p, 9.3, seed=1)
    whole = p.model.encode_audio(feats[None], torch.tensor([feats.shape[0]]))[0][0]
    joined = encode_clips(p.model, [feats], Windowing(window_frames=250, overlap_frames=50))[0]
    assert abs(joined.shape[0] - whole.shape[0]) <= 2, (joined.shape, whole.shape)


def test_a_three_minute_file_is_answered_whole(p, tmp_path):
    """Whisper takes 30 s; without windows this clip would be refused by the encoder."""
    clip = np.concatenate([tone(10.0, 150 + 40 * i, seed=i) for i in range(18)])
    path = write_wav(tmp_path / "three_minutes.wav", clip)
    feats = features(p, 1.0)
    with pytest.raises(ValueError, match="at most 3000 frames"):
        p.model.encode_audio(torch.zeros(1, 18000, feats.shape[1]), torch.tensor([18000]))
    reply = p(str(path), **no_special(p))[0]["generated_text"]
    assert reply
