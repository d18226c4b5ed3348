"""An OpenAI-compatible HTTP server for an exported audio LLM (FastAPI + uvicorn).

    auden serve exp/audio_llm/export --port 8000          # binds 127.0.0.1

- ``POST /v1/chat/completions``: messages with ``input_audio`` parts (base64 wav / flac /
  mp3, as the OpenAI API sends them) and text parts; ``stream: true`` answers with
  server-sent events in OpenAI's chunk format. Extra fields: ``task`` (a trained task,
  for a user turn without text), ``top_k``, ``num_beams``, ``repetition_penalty``,
  ``no_repeat_ngram_size``; ``logit_bias`` bans tokens (value -100 only).
- ``POST /v1/audio/transcriptions``: a multipart file upload; ``response_format`` json
  or text.
- ``GET /health``, ``GET /v1/models``.

Requests from concurrent clients are decoded together (:mod:`auden.inference.batcher`).
Every limit (body size, audio length, concurrent requests) answers a 4xx JSON error in
OpenAI's shape that names the limit and its flag. A request naming another model than the one
served is answered 404 (``model_not_found``), as OpenAI does, not silently by this one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from auden.inference.audio_input import AudioInputError
from auden.inference.batcher import Batcher
from auden.inference.pipeline import AudioTextToTextPipeline, AudioTooLongError

logger = logging.getLogger(__name__)

# OpenAI request field -> transformers generate argument (None: accepted, not used).
CHAT_GENERATION_FIELDS = {
    "max_tokens": "max_new_tokens",
    "max_completion_tokens": "max_new_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "seed": "seed",
    "num_beams": "num_beams",
    "repetition_penalty": "repetition_penalty",
    "no_repeat_ngram_size": "no_repeat_ngram_size",
}
IGNORED_FIELDS = {"model", "user", "n", "stream_options", "modalities", "store", "metadata"}
BAN = -100  # OpenAI's logit_bias value that bans a token


@dataclass
class ServerConfig:
    """The flags of ``auden serve``; each limit's error names its flag."""

    host: str = "127.0.0.1"
    port: int = 8000
    batch_size: int = 8  # --batch-size: requests decoded together at most
    max_wait_ms: float = 10.0  # --max-wait-ms: how long a request waits for others
    max_body_mb: float = 25.0  # --max-body-mb (OpenAI's upload limit)
    max_audio_s: float = 600.0  # --max-audio-s: seconds of audio per request
    max_concurrent: int = 64  # --max-concurrent: requests in flight at once
    max_new_tokens: int = 256  # --max-new-tokens: when a request names none


class ApiError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {"message", "type", "code"}}``."""

    def __init__(self, status: int, message: str, code: str, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.code, self.kind = status, message, code, kind

    def response(self) -> JSONResponse:
        body = {
            "error": {"message": self.message, "type": self.kind, "param": None, "code": self.code}
        }
        return JSONResponse(body, status_code=self.status)


@dataclass
class InFlight:
    """POST requests being answered now (the event loop's thread alone changes it)."""

    n: int = 0


class LimitsMiddleware:
    """Body size and requests in flight, checked before a request reaches an endpoint.

    Plain ASGI, so a streamed reply counts as in flight until its last chunk is sent.
    """

    def __init__(self, app, config: ServerConfig, counter: InFlight) -> None:
        self.app = app
        self.config = config
        self.max_body = int(config.max_body_mb * 1024 * 1024)
        self.counter = counter

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        error = self._refusal(dict(scope["headers"]).get(b"content-length"))
        if error is not None:
            await error.response()(scope, receive, send)
            return
        self.counter.n += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.counter.n -= 1

    def _refusal(self, length: bytes | None) -> ApiError | None:
        if length is None:
            return ApiError(411, "a POST needs a Content-Length header", "length_required")
        if int(length) > self.max_body:
            return ApiError(
                413,
                f"request body is {int(length)} bytes, over the limit of {self.max_body} bytes "
                f"({self.config.max_body_mb:g} MB, --max-body-mb)",
                "max_body_mb",
            )
        if self.counter.n >= self.config.max_concurrent:
            return ApiError(
                429,
                f"too many concurrent requests: the limit is {self.config.max_concurrent} "
                "(--max-concurrent); retry shortly",
                "max_concurrent",
                kind="rate_limit_error",
            )
        return None


def build_app(pipeline: AudioTextToTextPipeline, config: ServerConfig, model_name: str) -> FastAPI:
    """The FastAPI app serving ``pipeline``; :func:`serve` runs it with uvicorn."""
    pipeline.max_audio_s = config.max_audio_s
    batcher = Batcher(pipeline, config.batch_size, config.max_wait_ms / 1000)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.close()  # the worker thread ends with the server

    app = FastAPI(title="auden", version="1", lifespan=lifespan)
    app.state.batcher = batcher
    in_flight = InFlight()
    app.add_middleware(LimitsMiddleware, config=config, counter=in_flight)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, e: ApiError):
        return e.response()

    @app.get("/health")
    async def health():
        s = batcher.stats
        return {
            "status": "ok",
            "model": model_name,
            "tasks": sorted(pipeline.tasks.tasks),
            "requests": s.requests,
            "batches": s.batches,
            "largest_batch": s.largest_batch,
            "in_flight": in_flight.n,
        }

    @app.get("/v1/models")
    async def models():
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "auden"}],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await _json_body(request)
        _check_model(body.get("model"), model_name)
        kwargs = _generation_args(body, config)
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise ApiError(400, "'messages' must be a list of messages", "messages")
        task = body.get("task")
        conv = await run_in_threadpool(_conversation, pipeline, messages, task)
        created, rid = int(time.time()), f"chatcmpl-{uuid.uuid4().hex}"
        if body.get("stream"):
            return StreamingResponse(
                _sse_chunks(pipeline, conv, kwargs, rid, created, model_name),
                media_type="text/event-stream",
            )
        reply = await _reply(batcher, conv, kwargs)
        return {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply},
                    "finish_reason": "stop",
                }
            ],
        }

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(
        file: UploadFile = File(...),
        model: str = Form(""),
        prompt: str = Form(""),
        response_format: str = Form("json"),
        temperature: float = Form(0.0),
        language: str = Form(""),
    ):
        if response_format not in ("json", "text"):
            raise ApiError(
                400,
                f"response_format '{response_format}' is not supported; use json or text",
                "response_format",
            )
        _check_model(model, model_name)
        data = await file.read()
        item = {"audio": data, "text": prompt} if prompt else {"audio": data}
        name = f"file '{file.filename}'"
        conv = await run_in_threadpool(_conversation, pipeline, item, "transcribe", name)
        kwargs = {"max_new_tokens": config.max_new_tokens, "temperature": temperature}
        reply = await _reply(batcher, conv, kwargs)
        if response_format == "text":
            return PlainTextResponse(reply)
        return {"text": reply}

    return app


def serve(model_dir: str | Path, config: ServerConfig, **pipeline_kwargs) -> None:
    """Load the model once and serve it until interrupted."""
    import uvicorn

    pipeline = AudioTextToTextPipeline.from_pretrained(model_dir, **pipeline_kwargs)
    app = build_app(pipeline, config, Path(model_dir).resolve().name)
    logger.info("serving %s on http://%s:%d", model_dir, config.host, config.port)
    uvicorn.run(app, host=config.host, port=config.port, log_level="info")


# ------------------------------------------------------------------------------- helpers
async def _json_body(request: Request) -> dict:
    try:
        body = json.loads(await request.body())
    except ValueError as e:
        raise ApiError(400, f"the request body is not valid JSON: {e}", "invalid_json") from e
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", "invalid_json")
    return body


def _check_model(requested, served: str) -> None:
    """A request naming another model is answered 404 (OpenAI's model_not_found), not
    silently by this one; a request that names none is this model's."""
    if requested in (None, "", served):
        return
    raise ApiError(
        404,
        f"model '{requested}' is not served here; this server serves '{served}' "
        "(GET /v1/models)",
        "model_not_found",
    )


def _generation_args(body: dict, config: ServerConfig) -> dict:
    unknown = (
        set(body)
        - set(CHAT_GENERATION_FIELDS)
        - IGNORED_FIELDS
        - {"messages", "stream", "task", "logit_bias"}
    )
    if unknown:
        raise ApiError(400, f"unknown request field(s) {sorted(unknown)}", "unknown_field")
    if body.get("n", 1) != 1:
        raise ApiError(400, "only n=1 is supported", "n")
    kwargs = {"max_new_tokens": config.max_new_tokens}
    for field_name, arg in CHAT_GENERATION_FIELDS.items():
        if body.get(field_name) is not None:
            kwargs[arg] = body[field_name]
    bias = body.get("logit_bias") or {}
    if bias:
        if not isinstance(bias, dict) or any(v != BAN for v in bias.values()):
            raise ApiError(400, f"logit_bias supports {BAN} (ban a token) only", "logit_bias")
        kwargs["suppress_tokens"] = sorted(int(k) for k in bias)
    return kwargs


def _conversation(pipeline, item, task, name: str = "request"):
    try:
        return pipeline.conversation(item, name=name, task=task)
    except AudioTooLongError as e:
        raise ApiError(413, f"{e} (--max-audio-s)", "max_audio_s") from e
    except (AudioInputError, ValueError) as e:
        raise ApiError(400, str(e), "invalid_input") from e


async def _reply(batcher: Batcher, conv, kwargs: dict) -> str:
    try:
        return await asyncio.wrap_future(batcher.submit(conv, kwargs))
    except (TypeError, ValueError) as e:  # e.g. a generation argument transformers refuses
        raise ApiError(400, str(e), "invalid_generation_argument") from e


def _sse_chunks(pipeline, conv, kwargs, rid: str, created: int, model: str) -> Iterator[str]:
    """OpenAI's chunk stream: a role chunk, content chunks, a stop chunk, then [DONE]."""

    def chunk(delta: dict, finish: str | None) -> str:
        body = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    try:
        for piece in pipeline.stream_conversation(conv, **kwargs):
            yield chunk({"content": piece}, None)
    except Exception as e:  # the status is sent already: report in the stream, as OpenAI does
        logger.exception("stream %s failed", rid)
        yield f"data: {json.dumps({'error': {'message': str(e), 'type': 'server_error'}})}\n\n"
        return
    yield chunk({}, "stop")
    yield "data: [DONE]\n\n"
