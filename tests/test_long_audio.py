"""Audio longer than the encoder's window is encoded window by window and joined, not cut."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_fixtures import export_tiny_model, no_special, tone, write_wav
from tiny_audio_llm import TEXTS, make_batch, make_tiny_llm, tiny_config

from auden import pipeline
from auden.audio.features import build_feature_extractor, extract_padded
from auden.inference.long_audio import Windowing, encode_clips
from auden.inference.pipeline import AudioTextToTextPipeline
from auden.models.audio_llm import AudioLlm, HeardAudio
from auden.types import EncoderOutput


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


# ------------------------------------------------------------------ words, on a model that transcribes
WINDOW_S = 0.96  # 96 feature frames -> 48 Whisper frames -> 12 projected (ds_rate 4): whole groups


def _word_clips() -> list[np.ndarray]:
    """Six clips of exactly one window, each a different pair of tones."""
    rng = np.random.default_rng(0)
    t = np.arange(int(WINDOW_S * 16000)) / 16000
    clips = []
    for i in range(6):
        wave = 0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t) + 0.2 * np.sin(
            2 * np.pi * (2500 - 220 * i) * t
        )
        clips.append((wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32))
    return clips


# The long files: the six clips in three orders. The same length and the same clips, so
# only the order of the windows' frames tells them apart.
ORDERS = [[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [2, 0, 5, 1, 3, 4]]


def _overfit_on_clips_and_their_concatenations(tmp_path) -> AudioLlm:
    """A tiny audio LLM that has memorised six clips alone and joined end to end (ORDERS).

    A joined row's encoder frames are each clip's frames, encoded alone, in order: what the
    pipeline builds for a long file whose windows are these clips. Reading them from a long
    file, window by window and in order, is the pipeline's work, which the test checks.
    """
    torch.manual_seed(0)
    config = tiny_config(make_tiny_llm(tmp_path / "llm"))
    config.llm.frozen = False
    model = AudioLlm.from_config(config)
    feats, lens = extract_padded(build_feature_extractor("whisper_fbank", 80), _word_clips())
    rows = [[i] for i in range(6)] + ORDERS
    targets = [" ".join(TEXTS[i] for i in row) for row in rows]
    batch = make_batch(feats.new_zeros(len(rows), 1, 80), lens[:1].repeat(len(rows)), targets)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    model.train()
    for step in range(800):  # noqa: B007 - reported below
        enc = model.run_encoder(feats, lens)
        joined = [torch.cat([enc.frames[i, : enc.lens[i]] for i in row]) for row in rows]
        row_lens = torch.tensor([x.shape[0] for x in joined])
        frames = torch.nn.utils.rnn.pad_sequence(joined, batch_first=True)
        logits, labels = model.compute_logits(
            batch,
            only_predicting_targets=True,
            heard=HeardAudio(EncoderOutput(frames, row_lens), None, {}),
        )
        loss = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.01:
            break
    assert loss.item() < 0.01, f"loss {loss.item():.3f} after {step + 1} steps"
    return model.eval()


def test_a_long_file_of_known_clips_gives_the_words_of_the_clips_one_by_one(tmp_path):
    model = _overfit_on_clips_and_their_concatenations(tmp_path)
    p = AudioTextToTextPipeline(model, window_s=WINDOW_S, overlap_s=0.0)
    clips = _word_clips()
    kw = {"max_new_tokens": 64}
    inputs = [{"audio": c, "sampling_rate": 16000, "text": "Transcribe:"} for c in clips]
    alone = [r[0]["generated_text"] for r in p(inputs, **kw)]
    assert alone == TEXTS[:6]
    for k, order in enumerate(ORDERS):
        path = write_wav(tmp_path / f"six_clips_{k}.wav", np.concatenate([clips[i] for i in order]))
        assert len(p.windowing.spans(576)) == 6  # the file is read window by window
        whole = p({"audio": str(path), "text": "Transcribe:"}, **kw)[0]["generated_text"]
        assert whole.split() == " ".join(alone[i] for i in order).split(), order
