"""`auden serve` under load: many concurrent clients, one request in ten malformed.

Starts the real command line (``auden serve MODEL``) on a loopback port, sends ``--requests``
chat completions from ``--clients`` threads (each its own HTTP connection), every
``--bad-every``-th one malformed in turn: bad JSON, bad base64, a body over the limit, an
unknown model, bytes that are not audio, NaN samples. It checks that the server never
dies, that every malformed request gets a 4xx whose message names the problem, and that
every good one is answered; it reports p50/p99 latency and the server's peak RSS, and
compares its RSS over the first and the last ``--window`` requests (flat: within 10%).

    python tests/faults/server_load.py --requests 2000 --clients 20   # RELIABILITY.md's figure
    python tests/faults/server_load.py --model exp/audio_llm/export    # any exported model

Without ``--model`` it exports the tiny Whisper + Qwen2 model of the inference tests.
The slow test ``test_server_load.py`` runs a small variant.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the tiny model

MAX_BODY_MB = 1.0  # the server's --max-body-mb here: an oversize body is 1.5 MB, not 26
MAX_TOKENS = 5
# kind -> what the error message must say (a regular-expression-free substring)
BAD_KINDS = {
    "bad JSON": "not valid JSON",
    "bad base64": "base64",
    "oversize body": "--max-body-mb",
    "unknown model": "is not served here",
    "not audio": "cannot decode",
    "NaN samples": "NaN or Inf",
}


@dataclass
class Result:
    index: int
    kind: str  # "good" or one of BAD_KINDS
    status: int  # HTTP status; 0 when the connection failed
    seconds: float
    ok: bool  # good: answered 200 with text; bad: 4xx naming the problem
    detail: str = ""


@dataclass
class LoadReport:
    requests: int
    clients: int
    bad: int
    good_answered: int
    good_total: int
    bad_named_4xx: int
    server_alive: bool
    p50_s: float
    p99_s: float
    bad_p50_s: float
    peak_rss_mb: float
    rss_first_mb: float  # median server RSS while the first `window` requests completed
    rss_last_mb: float  # ... and while the last `window` did
    window: int
    seconds: float
    failures: list[str] = field(default_factory=list)

    @property
    def rss_ratio(self) -> float:
        return self.rss_last_mb / self.rss_first_mb if self.rss_first_mb else float("nan")

    @property
    def passed(self) -> bool:
        return (self.server_alive and self.good_answered == self.good_total
                and self.bad_named_4xx == self.bad and not self.failures)

    def summary(self) -> str:
        return (
            f"{self.requests} requests from {self.clients} clients in {self.seconds:.1f} s: "
            f"good answered {self.good_answered}/{self.good_total}, malformed answered 4xx "
            f"naming the problem {self.bad_named_4xx}/{self.bad}, server alive "
            f"{self.server_alive}; latency of good ones p50 {self.p50_s:.3f} s, p99 "
            f"{self.p99_s:.3f} s (malformed p50 {self.bad_p50_s:.3f} s); server RSS peak "
            f"{self.peak_rss_mb:.0f} MB, first {self.window} {self.rss_first_mb:.0f} MB, last "
            f"{self.window} {self.rss_last_mb:.0f} MB (x{self.rss_ratio:.3f})"
        )


def wav_b64(samples: np.ndarray, rate: int = 16000) -> str:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="FLOAT")
    return base64.b64encode(buffer.getvalue()).decode()


def clip(index: int) -> np.ndarray:
    """0.5-2.0 s of a tone with a little noise, different for each request."""
    rng = np.random.default_rng(index)
    seconds, freq = rng.uniform(0.5, 2.0), rng.uniform(150, 600)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)).astype(
        np.float32
    )


def chat_body(audio_b64: str, model: str, text: str = "Transcribe the audio.") -> dict:
    content = [
        {"type": "input_audio", "input_audio": {"data": audio_b64, "format": "wav"}},
        {"type": "text", "text": text},
    ]
    return {"model": model, "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": content}]}


def request_for(index: int, bad_every: int, model: str) -> tuple[str, bytes]:
    """(kind, body) of request ``index``: every ``bad_every``-th is malformed, kinds in turn."""
    if bad_every and index % bad_every == bad_every - 1:
        kind = list(BAD_KINDS)[(index // bad_every) % len(BAD_KINDS)]
    else:
        kind = "good"
    samples = clip(index)
    if kind == "bad JSON":
        return kind, json.dumps(chat_body(wav_b64(samples), model)).encode()[:-7]
    if kind == "bad base64":
        return kind, json.dumps(chat_body("@@ not base64 @@", model)).encode()
    if kind == "oversize body":
        return kind, json.dumps(chat_body(wav_b64(samples), model, "x" * int(1.5e6))).encode()
    if kind == "unknown model":
        return kind, json.dumps(chat_body(wav_b64(samples), "gpt-4o")).encode()
    if kind == "not audio":
        text = base64.b64encode(b"just some text, not a wav file\n" * 20).decode()
        return kind, json.dumps(chat_body(text, model)).encode()
    if kind == "NaN samples":
        samples[len(samples) // 3 :] = np.nan
    return kind, json.dumps(chat_body(wav_b64(samples), model)).encode()


def send(client: httpx.Client, url: str, index: int, bad_every: int, model: str) -> Result:
    kind, body = request_for(index, bad_every, model)
    start = time.monotonic()
    try:
        r = client.post(url + "/v1/chat/completions", content=body,
                        headers={"content-type": "application/json"})
    except httpx.HTTPError as e:
        return Result(index, kind, 0, time.monotonic() - start, False, f"{type(e).__name__}: {e}")
    seconds = time.monotonic() - start
    try:
        reply = r.json()
    except ValueError:
        return Result(index, kind, r.status_code, seconds, False, f"not JSON: {r.text[:200]}")
    if kind == "good":
        content = (reply.get("choices") or [{}])[0].get("message", {}).get("content")
        ok = r.status_code == 200 and isinstance(content, str)
        return Result(index, kind, r.status_code, seconds, ok, "" if ok else r.text[:300])
    message = (reply.get("error") or {}).get("message", "")
    ok = 400 <= r.status_code < 500 and BAD_KINDS[kind] in message
    return Result(index, kind, r.status_code, seconds, ok, message[:300])


class RssMonitor:
    """Samples a process's resident memory (Linux /proc) with the requests done so far."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.done = 0  # requests completed, set by the load loop
        self.samples: list[tuple[int, float]] = []  # (requests done, RSS MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self, key: str) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append((self.done, self._read("VmRSS")))
            except OSError:  # the process is gone: the load loop reports it
                return

    def __enter__(self) -> RssMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mb(self) -> float:
        return self._read("VmHWM")

    def median_between(self, lo: int, hi: int) -> float:
        values = [mb for done, mb in self.samples if lo <= done <= hi]
        return statistics.median(values) if values else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: Path, port: int, log: Path) -> subprocess.Popen:
    """``auden serve`` as a user starts it, in its own process."""
    cmd = [sys.executable, "-c", "import sys; from auden.cli import main; sys.exit(main())",
           "serve", str(model_dir), "--port", str(port), "--max-body-mb", str(MAX_BODY_MB),
           "--max-new-tokens", str(MAX_TOKENS)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with open(log, "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"auden serve exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            return httpx.get(url + "/health", timeout=5).json()
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"auden serve did not answer /health within {timeout:.0f} s")


def run_load(model_dir: Path, requests: int, clients: int, bad_every: int, window: int,
             log: Path) -> tuple[LoadReport, list[Result]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(model_dir, port, log)
    try:
        model = wait_healthy(url, proc, log)["model"]
        results: list[Result] = []
        lock, next_index = threading.Lock(), iter(range(requests))

        def client_loop(monitor: RssMonitor) -> None:
            with httpx.Client(timeout=300) as client:
                while True:
                    with lock:
                        index = next(next_index, None)
                    if index is None:
                        return
                    result = send(client, url, index, bad_every, model)
                    with lock:
                        results.append(result)
                        monitor.done = len(results)

        start = time.monotonic()
        with RssMonitor(proc.pid) as monitor:
            threads = [threading.Thread(target=client_loop, args=(monitor,)) for _ in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seconds = time.monotonic() - start
            alive = proc.poll() is None
            health = httpx.get(url + "/health", timeout=30).json() if alive else {}
            peak = monitor.peak_mb() if alive else float("nan")
        good = [r for r in results if r.kind == "good"]
        bad = [r for r in results if r.kind != "good"]
        latencies = sorted(r.seconds for r in good) or [float("nan")]
        report = LoadReport(
            requests=len(results), clients=clients, bad=len(bad),
            good_answered=sum(r.ok for r in good), good_total=len(good),
            bad_named_4xx=sum(r.ok for r in bad), server_alive=alive and health.get("status") == "ok",
            p50_s=statistics.median(latencies),
            p99_s=latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            bad_p50_s=statistics.median([r.seconds for r in bad]) if bad else float("nan"),
            peak_rss_mb=peak, rss_first_mb=monitor.median_between(1, window),
            rss_last_mb=monitor.median_between(len(results) - window + 1, len(results)),
            window=window, seconds=seconds,
            failures=[f"{r.index} {r.kind}: {r.status} {r.detail}" for r in results if not r.ok],
        )
        return report, results
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="", help="an exported model (default: a tiny one)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--bad-every", type=int, default=10, help="one in N is malformed")
    parser.add_argument("--window", type=int, default=500, help="requests per RSS window")
    parser.add_argument("--json", default="", help="also write the report here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model) if args.model else None
        if model_dir is None:
            from inference_fixtures import export_tiny_model

            model_dir = export_tiny_model(Path(tmp) / "tiny")
        report, _ = run_load(model_dir, args.requests, args.clients, args.bad_every,
                             args.window, Path(tmp) / "serve.log")
    print(report.summary())
    for failure in report.failures[:20]:
        print("  failed:", failure)
    flat = abs(report.rss_ratio - 1) <= 0.10
    print(f"RSS flat within 10%: {flat}; passed: {report.passed and flat}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({**asdict(report), "rss_ratio": report.rss_ratio}, indent=1)
        )
    return 0 if report.passed and flat else 1


if __name__ == "__main__":
    sys.exit(main())
