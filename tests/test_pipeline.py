"""`pipeline("audio-text-to-text")` on a tiny exported model: inputs, tasks, batches, streams."""

from __future__ import annotations

import numpy as np
import pytest
from inference_fixtures import (
    export_tiny_model,
    no_special,
    tone,
    wav_bytes,
    write_wav,
)
from lhotse import load_manifest
from tinycorpus import write_data_config

from auden import pipeline
from auden.data.config import DataConfig, FeatureKind, load_data_config
from auden.decoding.decode import build_test_loader, decode_utterances
from auden.inference.audio_input import AudioInputError


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return export_tiny_model(tmp_path_factory.mktemp("pipeline"))


@pytest.fixture(scope="module")
def p(model_dir):
    return pipeline("audio-text-to-text", model=model_dir)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return [
        write_wav(root / f"clip{i}.wav", tone(0.6 + 0.4 * i, 220 * (i + 1), seed=i))
        for i in range(5)
    ]


def text(result) -> str:
    assert isinstance(result, list) and set(result[0]) == {"generated_text"}
    return result[0]["generated_text"]


def test_every_audio_input_form_gives_the_same_reply(p, clips, tmp_path):
    kw = no_special(p)
    samples = tone(1.0, 440)
    path = write_wav(tmp_path / "a.wav", samples)
    flac = write_wav(tmp_path / "a.flac", samples)
    replies = {
        "path": text(p(str(path), **kw)),
        "flac": text(p(flac, **kw)),
        "dict": text(p({"audio": str(path), "text": "Transcribe the audio."}, **kw)),
        "array": text(p({"audio": samples, "sampling_rate": 16000}, **kw)),
        "bytes": text(p(wav_bytes(samples), **kw)),
        "messages": text(
            p(
                [
                    {
                        "role": "user",
                        "content": [
                            {"type": "audio", "path": str(path)},
                            {"type": "text", "text": "Transcribe the audio."},
                        ],
                    }
                ],
                **kw,
            )
        ),
    }
    assert replies["path"] and len(set(replies.values())) == 1, replies


def test_any_sampling_rate_is_resampled(p, tmp_path):
    kw = no_special(p)
    at_8k = tone(1.0, 300, rate=8000)
    from_file = text(p(write_wav(tmp_path / "8k.wav", at_8k, 8000), **kw))
    from_array = text(p(at_8k, sampling_rate=8000, **kw))
    assert from_file and from_file == from_array


def test_task_uses_the_prompt_saved_with_the_model(p, clips):
    kw = no_special(p)
    described = text(p(clips[0], task="describe", **kw))
    asked = text(p({"audio": clips[0], "text": "Describe the sound."}, **kw))
    default = text(p(clips[0], **kw))
    assert described == asked and default == text(p(clips[0], task="transcribe", **kw))
    assert described != default  # the prompt reaches the model
    with pytest.raises(ValueError, match=r"unknown task 'summarise'.*\['describe', 'transcribe'\]"):
        p(clips[0], task="summarise")


def test_batched_decoding_equals_one_by_one_in_input_order(p, clips):
    kw = no_special(p)
    one_by_one = [text(p(c, **kw)) for c in clips]
    batched = [text(r) for r in p(clips, batch_size=3, **kw)]
    assert len(set(one_by_one)) > 1 and batched == one_by_one


def test_pipeline_text_equals_evaluate_hypothesis(model_dir, p, tiny_corpus, tmp_path):
    """evaluate.py's path (Lhotse cuts -> dataset -> model.decode) and the pipeline agree."""
    few = tmp_path / "cuts.jsonl.gz"
    cuts = load_manifest(tiny_corpus.cuts).subset(first=4)
    cuts.to_file(few)
    config = write_data_config(
        tmp_path / "test.yaml", [{"name": "t", "manifest": str(few), "task": "transcribe"}]
    )
    data = DataConfig(feature=FeatureKind.whisper_fbank, on_the_fly_feats=True, num_workers=0)
    loader, n = build_test_loader(load_data_config(config)[0], data, max_duration=60, seed=0)
    decoded = decode_utterances(p.model, loader, max_new_tokens=8, total=n)
    by_id = {c.id: c for c in cuts}
    assert len(decoded) == 4
    for utt in decoded:
        cut = by_id[utt.cut_id]
        audio = cut.recording.sources[0].source
        reply = text(p({"audio": audio, "text": utt.prompt}, max_new_tokens=8))
        assert reply == utt.hyp, utt.cut_id
    assert any(u.hyp for u in decoded)


def test_several_clips_and_turns_in_one_conversation(p, clips):
    kw = no_special(p)
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "audio", "path": str(clips[0])},
                {"type": "text", "text": "Transcribe the audio."},
            ],
        },
        {"role": "assistant", "content": "hello world"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "And these two?"},
                {"type": "audio", "path": str(clips[1])},
                {"type": "audio", "path": str(clips[2])},
            ],
        },
    ]
    reply = text(p(messages, **kw))
    assert reply  # frame counts per clip: tests/test_chat_inputs.py


def test_streamed_pieces_join_to_the_reply(p, clips):
    # Words only (tokens that start with a space): the streamer emits text at word ends.
    tok = p.tokenizer
    words = [
        i
        for i in range(len(tok))
        if tok.decode([i]).startswith(" ")
        and tok.decode([i]).isascii()
        and i not in tok.all_special_ids
    ]
    kw = {"max_new_tokens": 8, "suppress_tokens": sorted(set(range(len(tok))) - set(words))}
    pieces = list(p.stream(clips[3], **kw))
    assert len(pieces) > 1 and "".join(pieces) == text(p(clips[3], **kw))


def test_sampling_arguments_reach_generate(p, clips):
    kw = no_special(p)
    greedy = text(p(clips[1], **kw))
    sampled = {text(p(clips[1], temperature=5.0, seed=s, **kw)) for s in range(4)}
    assert len(sampled) > 1 or greedy not in sampled
    assert text(p(clips[1], temperature=0, **kw)) == greedy
    with pytest.raises(TypeError, match="unknown generation argument"):
        p(clips[1], temprature=0.3)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"audio": "no/such.wav"}, r"audio file 'no/such\.wav' not found"),
        ({"audio": b"not audio at all"}, "cannot decode 16 bytes"),
        ({"audio": np.zeros(0, np.float32), "sampling_rate": 16000}, "empty"),
        ({"audio": np.zeros(100, np.float32)}, "needs its 'sampling_rate'"),
        ({"audio": "https://example.com/a.wav"}, "URLs are refused"),
        ({"text": "hi"}, "needs 'audio'"),
        ([{"role": "user", "content": "What is 2 + 2?"}], "no audio in the request"),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": "%%%", "format": "wav"}}
                    ],
                }
            ],
            "not valid base64",
        ),
        (
            [
                {"role": "user", "content": [{"type": "audio", "path": "x.wav"}]},
                {"role": "assistant", "content": "ok"},
            ],
            "end with an 'assistant' turn",
        ),
    ],
)
def test_bad_input_is_named_and_the_pipeline_keeps_working(p, clips, bad, message):
    with pytest.raises(AudioInputError, match=message):
        p(bad)
    assert text(p(clips[0], max_new_tokens=2)) is not None


def test_unreadable_file_is_named(p, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEfmt nonsense")
    with pytest.raises(AudioInputError, match="cannot read audio file '.*broken.wav'"):
        p(str(broken))


def test_max_audio_seconds_refuses_longer_input(model_dir, clips):
    short = pipeline("audio-text-to-text", model=model_dir, max_audio_s=0.5)
    with pytest.raises(AudioInputError, match=r"clip0\.wav.*0\.6 s of audio, over the limit"):
        short(clips[0])


def test_a_clip_longer_than_training_saw_is_answered_with_a_warning(tmp_path, clips, caplog):
    """The model reads it whole, but one trained on short clips may answer for part of it:
    the user is told, with the length training read (auden export saves it in tasks.json)."""
    from inference_fixtures import TASKS

    from auden.inference.tasks import TaskPrompts

    folder = export_tiny_model(tmp_path)
    TaskPrompts(tasks=TASKS.tasks, default=TASKS.default, trained_max_seconds=1.0).save(folder)
    assert TaskPrompts.load(folder).trained_max_seconds == 1.0
    short = pipeline("audio-text-to-text", model=folder)
    def warnings() -> list[str]:
        return [
            r.getMessage() for r in caplog.records
            if r.name == "auden.inference.pipeline" and r.levelname == "WARNING"
        ]

    with caplog.at_level("WARNING", logger="auden.inference.pipeline"):
        short(clips[0], **no_special(short))  # 0.6 s: no warning
        assert warnings() == []
        reply = text(short(clips[2], **no_special(short)))  # 1.4 s
    assert reply is not None
    assert len(warnings()) == 1
    assert "clip2.wav': a 1.4 s clip, longer than any this model was trained on (1 s)" in warnings()[0]
