"""Dynamic batching: requests from concurrent clients share one decode.

Each request is queued with its generation arguments; one worker thread takes the first
waiting request, waits up to ``max_wait_s`` for more (up to ``batch_size``), and decodes
those that share generation arguments together. N concurrent clients then cost about
one batch instead of N decodes in a row::

    batcher = Batcher(pipeline, batch_size=8, max_wait_s=0.01)
    reply = await asyncio.wrap_future(batcher.submit(conversation, {"max_new_tokens": 64}))
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from auden.inference.conversation import Conversation
from auden.inference.pipeline import AudioTextToTextPipeline

logger = logging.getLogger(__name__)


@dataclass
class _Job:
    conv: Conversation
    kwargs: dict
    future: Future = field(default_factory=Future)

    @property
    def key(self) -> str:  # requests with equal generation arguments can share a batch
        return json.dumps(self.kwargs, sort_keys=True, default=str)


@dataclass
class BatchStats:
    requests: int = 0
    batches: int = 0
    largest_batch: int = 0


class Batcher:
    """One worker thread decoding queued requests in batches; see the module doc."""

    def __init__(
        self, pipeline: AudioTextToTextPipeline, batch_size: int = 8, max_wait_s: float = 0.01
    ) -> None:
        self.pipeline = pipeline
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="auden-batcher", daemon=True)
        self._thread.start()

    def submit(self, conv: Conversation, kwargs: dict) -> Future:
        """Queue one request; the future's result is the reply text."""
        job = _Job(conv, dict(kwargs))
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _collect(self, first: _Job) -> list[_Job]:
        jobs = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(jobs) < self.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                job = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # stop after this batch
                break
            jobs.append(job)
        return jobs

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            groups: dict[str, list[_Job]] = {}
            for job in self._collect(first):
                groups.setdefault(job.key, []).append(job)
            for jobs in groups.values():
                self._decode(jobs)

    def _decode(self, jobs: list[_Job]) -> None:
        live = [j for j in jobs if j.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            replies = self.pipeline.generate(
                [j.conv for j in live], batch_size=len(live), **live[0].kwargs
            )
        except Exception as e:  # every request of the batch gets the error
            logger.exception("batch of %d failed", len(live))
            for j in live:
                j.future.set_exception(e)
            return
        self.stats.requests += len(live)
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(live))
        for j, reply in zip(live, replies):
            j.future.set_result(reply)
