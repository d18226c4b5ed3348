"""`auden serve` for real: uvicorn on a loopback port, called with the openai client and raw HTTP."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import openai
import pytest
import uvicorn
from inference_fixtures import export_tiny_model, tone, wav_bytes

from auden.inference.pipeline import AudioTextToTextPipeline
from auden.inference.server import ServerConfig, build_app

# A deprecated API our code calls (FastAPI's on_event, say) fails the tests here.
pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning:auden")

MAX_TOKENS = 5
CONFIG = ServerConfig(
    batch_size=8,
    max_wait_ms=200,
    max_body_mb=0.5,
    max_audio_s=6.0,
    max_concurrent=4,
    max_new_tokens=MAX_TOKENS,
)
http = httpx.Client(timeout=300)  # a shared, loaded CPU can be slow; nothing here hangs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on a free loopback port, in a thread of this process; stopped at the end."""
    model_dir = export_tiny_model(tmp_path_factory.mktemp("server"))
    p = AudioTextToTextPipeline.from_pretrained(model_dir)
    app = build_app(p, CONFIG, "tiny")
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", p, app
    uv.should_exit = True
    thread.join(timeout=30)
    # The app's lifespan stops the batcher's worker thread with the server.
    assert not app.state.batcher._thread.is_alive(), "the batcher outlived the server"


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0, timeout=300)


def ban_special(p) -> dict:
    return {str(i): -100 for i in p.tokenizer.all_special_ids}


def audio_part(samples: np.ndarray, fmt: str = "wav") -> dict:
    data = base64.b64encode(wav_bytes(samples, fmt="FLAC" if fmt == "flac" else "WAV"))
    return {"type": "input_audio", "input_audio": {"data": data.decode(), "format": fmt}}


def ask(samples, text="Transcribe the audio.", fmt="wav") -> list[dict]:
    content = [audio_part(samples, fmt)] + ([{"type": "text", "text": text}] if text else [])
    return [{"role": "user", "content": content}]


def local(p, samples, text="Transcribe the audio.") -> str:
    kw = {"max_new_tokens": MAX_TOKENS, "suppress_tokens": p.tokenizer.all_special_ids}
    return p({"audio": samples, "sampling_rate": 16000, "text": text}, **kw)[0]["generated_text"]


def test_health_and_models(server):
    url = server[0]
    health = http.get(url + "/health").json()
    assert health["status"] == "ok" and health["tasks"] == ["describe", "transcribe"]
    assert http.get(url + "/v1/models").json()["data"][0]["id"] == "tiny"


def test_openai_client_chat_equals_the_pipeline(server, client):
    _, p, _ = server
    samples = tone(1.0, 330)
    out = client.chat.completions.create(
        model="tiny",
        messages=ask(samples, fmt="flac"),
        max_tokens=MAX_TOKENS,
        logit_bias=ban_special(p),
    )
    assert out.choices[0].message.content == local(p, samples)
    assert out.choices[0].message.content


def test_openai_client_streaming_joins_to_the_same_reply(server, client):
    _, p, _ = server
    samples = tone(0.8, 520)
    stream = client.chat.completions.create(
        model="tiny",
        messages=ask(samples),
        max_tokens=MAX_TOKENS,
        stream=True,
        logit_bias=ban_special(p),
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == local(p, samples) and chunks[-1].choices[0].finish_reason == "stop"


def test_task_field_uses_the_trained_prompt(server):
    url, p, _ = server
    samples = tone(0.7, 610)
    body = {
        "model": "tiny",
        "messages": ask(samples, text=None),
        "task": "describe",
        "max_tokens": MAX_TOKENS,
        "logit_bias": ban_special(p),
    }
    reply = http.post(url + "/v1/chat/completions", json=body).json()
    assert reply["choices"][0]["message"]["content"] == local(p, samples, "Describe the sound.")


def test_transcriptions_upload_json_and_text(server, client):
    url, p, _ = server
    samples = tone(0.9, 400)
    via_client = client.audio.transcriptions.create(
        model="tiny", file=("a.wav", wav_bytes(samples), "audio/wav")
    )
    raw = http.post(
        url + "/v1/audio/transcriptions",
        files={"file": ("a.wav", wav_bytes(samples), "audio/wav")},
        data={"model": "tiny", "response_format": "text"},
    )
    expected = p({"audio": samples, "sampling_rate": 16000}, max_new_tokens=MAX_TOKENS)
    assert via_client.text == raw.text == expected[0]["generated_text"]


def test_concurrent_requests_are_batched_and_each_gets_its_own_reply(server):
    url, p, app = server
    clips = [tone(0.5 + 0.1 * i, 200 + 70 * i, seed=i) for i in range(4)]
    stats = app.state.batcher.stats
    before = (stats.requests, stats.batches)

    def call(samples):
        body = {
            "model": "tiny",
            "messages": ask(samples),
            "max_tokens": MAX_TOKENS,
            "logit_bias": ban_special(p),
        }
        return http.post(url + "/v1/chat/completions", json=body, timeout=120).json()

    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(call, clips))
    texts = [r["choices"][0]["message"]["content"] for r in replies]
    assert texts == [local(p, c) for c in clips]
    served, batches = stats.requests - before[0], stats.batches - before[1]
    assert served == 4 and batches < 4, (served, batches)


BAD_REQUESTS = [
    ("unreadable file", "transcribe", b"RIFF not really a wav", 400, "file 'a.wav'.*cannot decode"),
    ("empty audio", "transcribe", b"", 400, "empty"),
    (
        "wrong base64",
        "chat",
        [
            {
                "role": "user",
                "content": [
                    {
                        "type": "input_audio",
                        "input_audio": {"data": "@@not base64@@", "format": "wav"},
                    }
                ],
            }
        ],
        400,
        "not valid base64",
    ),
    (
        "audio over the limit",
        "chat",
        "long",
        413,
        r"7\.0 s of audio, over the limit.*--max-audio-s",
    ),
    ("body over the limit", "chat", "huge", 413, "--max-body-mb"),
    ("unknown task", "task", "sing", 400, r"unknown task 'sing'.*\['describe', 'transcribe'\]"),
    ("ends with an assistant turn", "chat", "assistant_last", 400, "end with an 'assistant' turn"),
    ("unknown model", "chat", "other_model", 404, "model 'gpt-4o' is not served here.*'tiny'"),
    (
        "text only",
        "chat",
        [{"role": "user", "content": "What is two plus two?"}],
        400,
        "no audio in the request",
    ),
]


@pytest.mark.parametrize(
    "what, kind, payload, status, message", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_request_is_named_and_the_server_serves_the_next(
    server, what, kind, payload, status, message
):
    url, p, _ = server
    if kind == "transcribe":
        r = http.post(
            url + "/v1/audio/transcriptions",
            files={"file": ("a.wav", payload)},
            data={"model": "tiny"},
        )
    else:
        body = {"model": "tiny", "max_tokens": MAX_TOKENS, "messages": payload}
        if payload == "long":
            body["messages"] = ask(tone(7.0, 300))
        elif payload == "huge":
            body["messages"] = ask(tone(1.0, 300), text="x" * 600_000)
        elif payload == "assistant_last":
            body["messages"] = [*ask(tone(0.5, 300)), {"role": "assistant", "content": "ok"}]
        elif payload == "other_model":
            body.update(messages=ask(tone(0.5, 300)), model="gpt-4o")
        elif kind == "task":
            body.update(messages=ask(tone(0.5, 300), text=None), task=payload)
        r = http.post(
            url + "/v1/chat/completions",
            content=json.dumps(body),
            headers={"content-type": "application/json"},
        )
    assert r.status_code == status, r.text
    error = r.json()["error"]
    import re

    assert re.search(message, error["message"]), error
    ok = http.post(
        url + "/v1/chat/completions",
        json={"model": "tiny", "messages": ask(tone(0.5, 250)), "max_tokens": 2},
    )
    assert ok.status_code == 200


def test_over_the_concurrency_limit_is_refused_with_429(server):
    """Hold the model (its lock) so that requests stay in flight, then ask once more."""
    url, p, _ = server
    body = {"model": "tiny", "messages": ask(tone(0.5, 300)), "max_tokens": 2}
    with ThreadPoolExecutor(CONFIG.max_concurrent) as pool:
        with p._lock:
            pending = [
                pool.submit(httpx.post, url + "/v1/chat/completions", json=body, timeout=120)
                for _ in range(CONFIG.max_concurrent)
            ]
            deadline = time.monotonic() + 120
            while http.get(url + "/health").json()["in_flight"] < CONFIG.max_concurrent:
                assert time.monotonic() < deadline, "requests did not arrive"
                time.sleep(0.05)
            refused = http.post(url + "/v1/chat/completions", json=body)
            assert refused.status_code == 429
        assert "--max-concurrent" in refused.json()["error"]["message"]
        assert all(f.result().status_code == 200 for f in pending)
