#!/usr/bin/env python3
"""Inference: the pipeline at batch 1 and 16, and `auden serve` under 1, 4 and 16 clients.

    python benchmarks/bench_inference.py                     # a demo-shaped random model
    python benchmarks/bench_inference.py --model EXPORT --audio-dir CLIPS   # a trained one

Without ``--model`` the model has the demo's shape (egs/mini_en: the ``xs`` Zipformer, the
projector, a Qwen2 of 128 dims x 2 layers with a 500-token vocabulary; ``--quick``: a
Qwen2 of 64 dims x 1 layer), built here with random weights and exported, since
speed does not depend on the weights. ``--model`` takes an ``auden export`` folder instead.
Clips are ``--clips`` files of ``--audio-dir`` (sorted, the first ones) or
``--seconds``-long noise. Every reply is exactly ``--new-tokens`` tokens (special tokens
are banned, through ``logit_bias`` for the server), so every run does the same work.

- pipeline: clips per CPU second of this one-thread process at batch 1 and 16 (each of
  ``--repeats`` values is one pass over the clips, after one warm-up);
- server: uvicorn on a free loopback port in this process and ``--requests`` chat
  requests (base64 wav ``input_audio`` parts, as the openai client sends them) from 1, 4
  and 16 concurrent clients: requests per second and p50 / p99 latency, in wall seconds
  (what a client waits; the load average beside them says how busy the machine was);
- dynamic batching: the same 16 requests sent at once against one after another, in
  wall and in CPU seconds (the issue's goal: 16 at once cost less than 16 in a row).
"""

from __future__ import annotations

import base64
import io
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
import torch
import uvicorn
from benchlib import Goal, Recorder, bench_parser, clock

from auden.inference.pipeline import AudioTextToTextPipeline
from auden.inference.server import ServerConfig, build_app
from auden.inference.tasks import TaskPrompts
from auden.models.audio_llm import AudioEncoderConfig, AudioLlm, AudioLlmConfig, LlmConfig
from auden.models.tiny_llm import TinyLlmSize, save_tiny_llm, train_chat_tokenizer

SR = 16000
PROMPT = "Transcribe the audio."
TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore",
    PROMPT,
    "Describe the audio.",
]


def export_random_model(root: Path, quick: bool) -> Path:
    """The demo's shape (see the module doc) with random weights, exported to ``root``."""
    tokenizer = train_chat_tokenizer(TEXTS * 20, vocab_size=500)
    size = TinyLlmSize(hidden_size=128, intermediate_size=256, num_hidden_layers=2)
    if quick:
        size = TinyLlmSize(hidden_size=64, intermediate_size=128, num_hidden_layers=1)
    llm = save_tiny_llm(root / "llm", tokenizer, size)
    config = AudioLlmConfig(
        audio_encoder=AudioEncoderConfig(model_type="zipformer", config="xs"),
        llm=LlmConfig(pretrained_model=str(llm)),
    )
    torch.manual_seed(0)
    folder = Path(AudioLlm.from_config(config).save_pretrained(root / "export"))
    TaskPrompts().save(folder)
    return folder


def load_clips(audio_dir: Path | None, n: int, seconds: float) -> list[np.ndarray]:
    """``n`` clips of ``audio_dir`` at 16 kHz, or ``n`` noise clips of ``seconds``."""
    if audio_dir is None:
        rng = np.random.default_rng(0)
        return [(0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32) for _ in range(n)]
    files = sorted(p for p in audio_dir.iterdir() if p.suffix in (".wav", ".flac"))[:n]
    if len(files) < n:
        raise SystemExit(f"--audio-dir '{audio_dir}': {len(files)} wav/flac files, need {n}")
    clips = []
    for f in files:
        samples, rate = sf.read(f, dtype="float32")
        if rate != SR:
            raise SystemExit(f"--audio-dir: '{f}' is {rate} Hz; this benchmark reads 16 kHz")
        clips.append(samples)
    return clips


def bench_pipeline(rec: Recorder, p, clips, batch_sizes, repeats, new_tokens) -> None:
    banned = p.tokenizer.all_special_ids
    kw = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "suppress_tokens": banned}
    inputs = [{"audio": a, "sampling_rate": SR, "text": PROMPT} for a in clips]
    first = None
    for bs in batch_sizes:
        p(inputs[:bs], batch_size=bs, **kw)  # warm-up
        values = []
        for _ in range(repeats):
            start = clock()
            p(inputs, batch_size=bs, **kw)
            values.append(len(inputs) / (clock() - start))
        fig = rec.figure(
            f"pipeline, batch {bs}",
            "clips / CPU s",
            values,
            anchor=first["name"] if first else "",
        )
        first = first or fig


def wav_b64(samples: np.ndarray) -> str:
    buffer = io.BytesIO()
    sf.write(buffer, samples, SR, format="WAV")
    return base64.b64encode(buffer.getvalue()).decode()


class LoopbackServer:
    """``build_app`` under uvicorn on a free loopback port, in a thread of this process."""

    def __init__(self, p, config: ServerConfig) -> None:
        self.app = build_app(p, config, "bench")
        self.uv = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="error")
        )
        self.thread = threading.Thread(target=self.uv.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.uv.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        port = self.uv.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        self.uv.should_exit = True
        self.thread.join(timeout=60)


def bench_server(rec: Recorder, p, clips, args) -> None:
    banned = {str(i): -100 for i in p.tokenizer.all_special_ids}
    bodies = [
        {
            "model": "bench",
            "max_tokens": args.new_tokens,
            "logit_bias": banned,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "input_audio",
                            "input_audio": {"data": wav_b64(a), "format": "wav"},
                        },
                        {"type": "text", "text": PROMPT},
                    ],
                }
            ],
        }
        for a in clips
    ]
    config = ServerConfig(
        batch_size=args.server_batch_size, max_wait_ms=args.max_wait_ms, max_concurrent=64
    )
    server = LoopbackServer(p, config)
    with server as url, httpx.Client(timeout=600) as http:

        def call(i: int) -> float:
            start = time.perf_counter()
            r = http.post(url + "/v1/chat/completions", json=bodies[i % len(bodies)])
            r.raise_for_status()
            return time.perf_counter() - start

        def run(n: int, clients: int) -> tuple[float, float, list[float]]:
            wall, cpu = time.perf_counter(), clock()
            with ThreadPoolExecutor(clients) as pool:
                latencies = list(pool.map(call, range(n)))
            return time.perf_counter() - wall, clock() - cpu, latencies

        run(4, 4)  # warm-up
        for clients in args.clients:
            wall, _, lat = run(args.requests, clients)
            lat.sort()
            p99 = lat[min(len(lat) - 1, int(np.ceil(0.99 * len(lat))) - 1)]
            rec.figure(
                f"server, {clients} client(s): throughput", "requests / s", [args.requests / wall]
            )
            rec.figure(f"server, {clients} client(s): latency (median = p50)", "s", lat)
            rec.figure(f"server, {clients} client(s): p99 latency", "s", [p99])
        seq_wall, seq_cpu, conc_wall, conc_cpu = [], [], [], []
        for _ in range(args.repeats):
            w, c, _ = run(16, 1)
            seq_wall.append(w), seq_cpu.append(c)
            w, c, _ = run(16, 16)
            conc_wall.append(w), conc_cpu.append(c)
        goal = Goal("<=", 1.0, on="ratio")
        for unit, seq, conc, tag in (
            ("wall s", seq_wall, conc_wall, ""),
            ("CPU s", seq_cpu, conc_cpu, " (CPU)"),
        ):
            first = rec.figure(f"16 requests one after another{tag}", unit, seq)
            rec.figure(f"16 requests at once{tag}", unit, conc, anchor=first["name"], goal=goal)
        stats = server.app.state.batcher.stats
        rec.details["batcher"] = {"batches": stats.batches, "largest_batch": stats.largest_batch}


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--model", type=Path, help="an `auden export` folder (default: random)")
    parser.add_argument("--audio-dir", type=Path, help="16 kHz wav/flac clips (default: noise)")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--server-batch-size", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.quick:
        args.clips, args.seconds, args.new_tokens, args.requests = 16, 1.0, 4, 16
    args.repeats = args.repeats or (1 if args.quick else 3)
    torch.set_num_threads(1)

    # A trained model's figures get their own result, next to the random model's.
    name, title = (
        "inference",
        "Inference: pipeline clips/s, server latency under concurrent clients",
    )
    if args.model:
        name, title = "inference_trained", f"{title} (trained model {args.model.name})"
    with Recorder(name, title, args, order=45) as rec, tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or export_random_model(Path(tmp), args.quick)
        p = AudioTextToTextPipeline.from_pretrained(model_dir)
        clips = load_clips(args.audio_dir, args.clips, args.seconds)
        bench_pipeline(rec, p, clips, args.batch_sizes, args.repeats, args.new_tokens)
        bench_server(rec, p, clips, args)
        rec.details.update(
            model=str(args.model)
            if args.model
            else "random, demo-shaped" + (" (quick: smaller)" if args.quick else ""),
            clips=len(clips),
            audio_s=round(sum(len(c) for c in clips) / SR, 2),
            new_tokens=args.new_tokens,
            server_batch_size=args.server_batch_size,
            max_wait_ms=args.max_wait_ms,
        )
        rec.note(
            "pipeline figures are clips per CPU second of this one-thread process; server "
            "figures are wall seconds (what a client waits) on a shared machine: read them "
            "with the load average; a p99 of fewer than 100 requests is their slowest"
        )


if __name__ == "__main__":
    main()
