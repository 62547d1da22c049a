"""Server: the payload logger (KServe agent's `logger`) — requests and responses posted as binary CloudEvents.

Inference never waits for the sink: events go into a bounded queue that a few sender tasks drain; when the queue
is full the event is dropped and counted (`modelplane_payload_log_dropped_total`), so a slow or dead sink costs
inference nothing but the enqueue.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from modelplane.server.metrics import Metrics

log = logging.getLogger("modelplane.payload_log")

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
MODES = ("all", "request", "response")


@dataclass(frozen=True, slots=True)
class LoggerConfig:
    url: str
    mode: str = "all"  # all | request | response
    metadata_headers: tuple[str, ...] = ()  # request headers copied into ce-metadata
    source_uri: str = "http://localhost:8080/"
    inference_service: str = ""
    namespace: str = ""
    component: str = "predictor"
    endpoint: str = ""
    queue_size: int = 1000
    senders: int = 4
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"logger mode must be one of {', '.join(MODES)}, got {self.mode!r}")


@dataclass(slots=True)
class _Event:
    model: str
    headers: list[tuple[str, str]]
    body: bytes


class PayloadLogger:
    def __init__(self, config: LoggerConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.log_requests = config.mode in ("all", "request")
        self.log_responses = config.mode in ("all", "response")
        self._queue: asyncio.Queue[_Event] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._client: Any = None

    async def start(self) -> None:
        import httpx

        self._queue = asyncio.Queue(self.config.queue_size)
        self._client = httpx.AsyncClient(timeout=self.config.timeout_s)
        self._tasks = [asyncio.create_task(self._send_forever()) for _ in range(self.config.senders)]

    async def close(self, drain_s: float = 2.0) -> None:
        """Give queued events `drain_s` to go out, then stop the senders."""
        if self._queue is not None:
            try:
                async with asyncio.timeout(drain_s):
                    await self._queue.join()
            except TimeoutError:
                log.warning("payload logger: %d events not delivered at shutdown", self._queue.qsize())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def event_id(self, headers: Mapping[str, str]) -> str:
        """The incoming request's ce-id when it has one, else a fresh id shared by its request and response."""
        return headers.get("ce-id") or str(uuid.uuid4())

    def request(self, model: str, event_id: str, body: bytes, content_type: str, headers: Mapping[str, str]) -> None:
        if self.log_requests:
            self._put(model, REQUEST_TYPE, event_id, body, content_type, headers)

    def response(self, model: str, event_id: str, body: bytes, content_type: str, headers: Mapping[str, str]) -> None:
        if self.log_responses:
            self._put(model, RESPONSE_TYPE, event_id, body, content_type, headers)

    def _put(
        self, model: str, ce_type: str, event_id: str, body: bytes, content_type: str, headers: Mapping[str, str]
    ) -> None:
        if self._queue is None:
            return
        c = self.config
        out = [
            ("ce-specversion", "1.0"),
            ("ce-id", event_id),
            ("ce-type", ce_type),
            ("ce-source", c.source_uri),
            ("ce-time", datetime.now(UTC).isoformat().replace("+00:00", "Z")),
            ("ce-inferenceservicename", c.inference_service or model),
            ("ce-namespace", c.namespace),
            ("ce-component", c.component),
            ("ce-endpoint", c.endpoint),
            ("content-type", content_type or "application/json"),
        ]
        if c.metadata_headers:
            wanted = {h: [headers[h.lower()]] for h in c.metadata_headers if h.lower() in headers}
            out.append(("ce-metadata", orjson.dumps(wanted).decode()))
        try:
            self._queue.put_nowait(_Event(model, out, body))
        except asyncio.QueueFull:
            self.metrics.log_event(model, delivered=False)

    async def _send_forever(self) -> None:
        assert self._queue is not None
        while True:
            event = await self._queue.get()
            try:
                response = await self._client.post(self.config.url, content=event.body, headers=event.headers)
                delivered = response.status_code < 300
                if not delivered:
                    log.warning("payload logger: sink answered %d", response.status_code)
            except Exception as exc:  # the sink is down or slow: count it and keep going
                log.debug("payload logger: delivery failed: %s", exc)
                delivered = False
            finally:
                self._queue.task_done()
            self.metrics.log_event(event.model, delivered)
