"""Server: the payload logger (KServe agent's `logger`) — requests and responses posted as binary CloudEvents.

Inference never waits for the sink: events go into a bounded queue that a few sender tasks drain; when the queue
is full the event is dropped and counted (`modelplane_payload_log_dropped_total`), so a slow or dead sink costs
inference nothing but the enqueue.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from modelplane.server.log_sink import PipelinedPoster
from modelplane.server.metrics import Metrics
from modelplane.server.settings import LoggerConfig

log = logging.getLogger("modelplane.payload_log")

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
BATCH = 256  # events one sender writes at once
FLUSH_S = 0.01  # how long a woken sender lets events gather before it writes (delivery latency, not request's)


@dataclass(slots=True)
class _Event:
    model: str
    head: bytes  # the event's own header lines, rendered
    body: bytes


class _Clock:
    """RFC 3339 UTC timestamps; the date-time part is formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        t = time.time()
        second = int(t)
        if second != self._second:
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((t - second) * 1e6):06d}Z"


class PayloadLogger:
    def __init__(self, config: LoggerConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.log_requests = config.mode in ("all", "request")
        self.log_responses = config.mode in ("all", "response")
        self._pending: deque[_Event] = deque()
        self._wakeup: asyncio.Event | None = None
        self._busy = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._clock = _Clock()
        self._id_prefix = uuid.uuid4().hex[:16]
        self._ids = itertools.count(1)
        c = config
        self._static = (
            f"ce-specversion: 1.0\r\nce-source: {c.source_uri}\r\nce-namespace: {c.namespace}\r\n"
            f"ce-component: {c.component}\r\nce-endpoint: {c.endpoint}\r\n"
        ).encode("latin-1")

    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._send_forever(PipelinedPoster(self.config.url, self.config.timeout_s)))
            for _ in range(self.config.senders)
        ]

    async def close(self, drain_s: float = 2.0) -> None:
        """Give queued events `drain_s` to go out, then stop the senders."""
        try:
            async with asyncio.timeout(drain_s):
                while self._pending or self._busy:  # noqa: ASYNC110 - a shutdown-only poll
                    await asyncio.sleep(0.01)
        except TimeoutError:
            log.warning("payload logger: %d events not delivered at shutdown", len(self._pending))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def event_id(self, headers: Mapping[str, str]) -> str:
        """The incoming request's ce-id when it has one, else a fresh id shared by its request and response
        (a random per-process prefix and a counter: unique, and ~10x cheaper than a uuid4 per request)."""
        return headers.get("ce-id") or f"{self._id_prefix}-{next(self._ids)}"

    def request(self, model: str, event_id: str, body: bytes, content_type: str, headers: Mapping[str, str]) -> None:
        if self.log_requests:
            self._put(model, REQUEST_TYPE, event_id, body, content_type, headers)

    def response(self, model: str, event_id: str, body: bytes, content_type: str, headers: Mapping[str, str]) -> None:
        if self.log_responses:
            self._put(model, RESPONSE_TYPE, event_id, body, content_type, headers)

    def _put(
        self, model: str, ce_type: str, event_id: str, body: bytes, content_type: str, headers: Mapping[str, str]
    ) -> None:
        if self._wakeup is None:
            return
        if len(self._pending) >= self.config.queue_size:
            self.metrics.log_event(model, delivered=False)
            return
        c = self.config
        head = (
            f"ce-id: {event_id}\r\nce-type: {ce_type}\r\nce-time: {self._clock.now()}\r\n"
            f"ce-inferenceservicename: {c.inference_service or model}\r\n"
            f"content-type: {content_type or 'application/json'}\r\n"
        )
        if c.metadata_headers:
            wanted = {h: [headers[h.lower()]] for h in c.metadata_headers if h.lower() in headers}
            head += f"ce-metadata: {orjson.dumps(wanted).decode()}\r\n"
        self._pending.append(_Event(model, self._static + head.encode("latin-1"), body))
        self._wakeup.set()

    async def _send_forever(self, poster: PipelinedPoster) -> None:
        """Take what is queued (up to BATCH events), send it pipelined on this sender's connection, count."""
        pending, wakeup = self._pending, self._wakeup
        assert wakeup is not None
        try:
            while True:
                if not pending:
                    wakeup.clear()
                    await wakeup.wait()
                    continue
                if len(pending) < BATCH:
                    await asyncio.sleep(FLUSH_S)  # let a few events gather: one write and one read for all
                events = [pending.popleft() for _ in range(min(BATCH, len(pending)))]
                self._busy += 1
                try:
                    statuses = await poster.post([poster.encode(e.head, e.body) for e in events])
                except Exception as exc:  # the sink is down or slow: count it and keep going
                    log.debug("payload logger: delivery failed: %s", exc)
                    await poster.close()
                    statuses = [0] * len(events)
                finally:
                    self._busy -= 1
                outcomes = Counter((e.model, 200 <= status < 300) for e, status in zip(events, statuses, strict=True))
                for (model, delivered), n in outcomes.items():
                    self.metrics.log_event(model, delivered, n)
        finally:
            await poster.close()
