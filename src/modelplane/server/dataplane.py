"""Server: the protocol-neutral data plane (health, metadata, infer, explain, repository); no HTTP, no gRPC."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from modelplane import __version__
from modelplane.protocol.errors import InvalidInput, ModelNotFound
from modelplane.protocol.types import InferRequest, InferResponse, Tensor
from modelplane.server.batch_kinds import V1, V2
from modelplane.server.batching import Gone, Kind
from modelplane.server.generation import Generation
from modelplane.server.metrics import Metrics
from modelplane.server.multimodel import ModelCache, State
from modelplane.server.payload_log import PayloadLogger
from modelplane.server.registry import Entry, ModelRegistry
from modelplane.server.responses import to_infer_response

EXTENSIONS = ["model_repository_extension", "binary_tensor_data"]
# A payload to log: its bytes, its parts, or how to make it (joined or serialised only when logging).
Body = bytes | list[bytes] | Callable[[], bytes]


class DataPlane:
    def __init__(
        self,
        registry: ModelRegistry,
        server_name: str = "modelplane",
        metrics: Metrics | None = None,
        payload_log: PayloadLogger | None = None,
        cache: ModelCache | None = None,
    ) -> None:
        self.registry = registry
        self.cache = cache  # many models, loaded on first request (--model-cache-bytes)
        self.server_name = server_name
        self.metrics = metrics or Metrics()
        self.payload_log = payload_log
        self.generation = Generation(registry, self.metrics)  # OpenAI and V2 generate routes

    # --- what every inference request goes through on either transport ----------------------------------
    async def admit(self, name: str, verb: str = "predict") -> Entry:
        """The ready model a request is for, before its body is read: 404 / 503, and 429 when a prediction would
        only join a full queue. With the model cache on, a model not loaded is loaded first."""
        cache = self.cache
        entry = self.registry.ready_entry(name) if cache is None else await cache.acquire(name)
        if verb == "predict":
            entry.admission.precheck()
        return entry

    def received(
        self, name: str, headers: Mapping[str, str], body: Body, content_type: str | None = None
    ) -> str | None:
        """A request arrived: the payload logger's request event. Returns the event id its response shares.
        Nothing is read unless logging is on: the body is made and the headers (whose content type is the default
        `content_type`) are parsed only then."""
        plog = self.payload_log
        if plog is None:
            return None
        event_id = plog.event_id(headers)
        plog.request(name, event_id, _bytes(body), _content_type(headers, content_type), headers)
        return event_id

    def answered(
        self,
        name: str,
        protocol: str,
        status: str,
        event: str | None,
        headers: Mapping[str, str],
        body: Body,
        content_type: str | None = None,
    ) -> None:
        """A request succeeded: counted, and its response logged with the request's event id."""
        self.metrics.count(name, protocol, status)
        if event is not None and self.payload_log is not None:
            self.payload_log.response(name, event, _bytes(body), _content_type(headers, content_type), headers)

    def failed(self, name: str, protocol: str, status: str) -> None:
        """A request failed: counted under the model's name only if it is served (label values stay bounded)."""
        if name and self.registry.has(name):
            self.metrics.count(name, protocol, status)

    # --- health and metadata -------------------------------------------------------------------------
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return self.registry.all_ready()

    def names(self) -> list[str]:
        return self.registry.names()

    def metadata(self) -> dict[str, Any]:
        return {"name": self.server_name, "version": __version__, "extensions": EXTENSIONS}

    def _check_version(self, name: str, version: str | None) -> None:
        if version and version not in self.registry.entry(name).model.versions():
            raise ModelNotFound(name, version)

    def model_ready(self, name: str, version: str | None = None) -> bool:
        """Ready or not; a model the repository has but that is not loaded is not ready (as Triton answers)."""
        if self.cache is not None:  # never the repository's directory listing: O(1) in the number of models
            if self.cache.state(name) is not State.READY:
                return False
        elif self.registry.unloaded(name):
            return False
        self._check_version(name, version)
        return self.registry.entry(name).model.ready

    async def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        if self.cache is not None:
            await self.cache.acquire(name)  # a model in standby loads to describe itself
        self._check_version(name, version)
        model = self.registry.entry(name).model
        described = model.version_model(version) if version else model  # a version's own tensors
        return {
            "name": name,
            "versions": model.versions(),
            "platform": model.platform,
            "inputs": [t.to_dict() for t in described.input_metadata()],
            "outputs": [t.to_dict() for t in described.output_metadata()],
        }

    # --- inference -------------------------------------------------------------------------------------
    async def infer(
        self,
        request: InferRequest,
        headers: Mapping[str, str],
        entry: Entry | None = None,
        deadline: float | None = None,
        gone: Gone | None = None,
    ) -> tuple[InferResponse, dict[str, str]]:
        """Run a V2 request; transports that already looked the model up pass its `entry`. `deadline`
        (time.monotonic()) comes from the transport, or from Triton's `timeout` request parameter (µs)."""
        entry = entry or self.registry.ready_entry(request.model_name)
        if request.model_version:
            self._check_version(request.model_name, request.model_version)
        if deadline is None and request.parameters and "timeout" in request.parameters:
            deadline = _deadline_from_us(request.parameters["timeout"])
        result, out_headers = await self._call(entry, V2, "predict", request, headers, deadline, gone)
        response = to_infer_response(result, request)
        if request.outputs:
            response.outputs = select_outputs(response, request)
        return response, out_headers

    async def predict_v1(
        self,
        name: str,
        payload: Any,
        headers: Mapping[str, str],
        verb: str = "predict",
        entry: Entry | None = None,
        deadline: float | None = None,
        gone: Gone | None = None,
    ) -> tuple[Any, dict[str, str]]:
        """Run a V1 predict or explain; transports that already looked the model up pass its `entry`; `gone()`
        completes when the client disconnects (a queued request then leaves the queue)."""
        entry = entry or self.registry.ready_entry(name)
        if isinstance(payload, dict) and "instances" in payload and not isinstance(payload["instances"], list):
            raise InvalidInput('Expected "instances" to be a list')
        return await self._call(entry, V1, verb, payload, headers, deadline, gone)

    async def _call(
        self,
        entry: Entry,
        kind: Kind,
        verb: str,
        payload: Any,
        headers: Mapping[str, str],
        deadline: float | None,
        gone: Gone | None = None,
    ) -> tuple[Any, dict[str, str]]:
        """Admission (limits, deadline), then the batcher or the pipeline directly."""
        admission = entry.admission
        entry.enter()  # an unload waits for this request; one that has begun refuses it (503)
        try:
            if deadline is None and not admission.limits.active:
                return await self._run(entry, kind, verb, payload, headers, gone)
            granted = admission.try_acquire() if deadline is None else None  # no coroutine when a slot is free
            if granted is None:
                granted = await admission.acquire(deadline, gone)
            try:
                return await self._run(entry, kind, verb, payload, headers, gone)
            finally:
                admission.release(granted)
        finally:
            entry.leave()

    @staticmethod
    def _run(
        entry: Entry, kind: Kind, verb: str, payload: Any, headers: Mapping[str, str], gone: Gone | None = None
    ) -> Awaitable[tuple[Any, dict[str, str]]]:
        """The batcher's or the pipeline's coroutine, awaited by the caller (no coroutine of its own)."""
        if entry.batcher is not None and verb == "predict":
            return entry.batcher.submit(kind, payload, headers, gone)
        return entry.pipeline(verb, payload, headers)

    # --- repository extension --------------------------------------------------------------------------
    async def load(self, name: str) -> None:
        self.registry.check_mutable(name)
        if self.cache is not None:
            await self.cache.load(name)
        else:
            await self.registry.load(name)

    async def unload(self, name: str) -> None:
        self.registry.check_mutable(name)
        if self.cache is not None:
            await self.cache.unload(name)
        else:
            await self.registry.unload(name)

    def index(self, ready_only: bool = False) -> list[dict[str, str]]:
        if self.cache is not None:
            return self.cache.index(ready_only)
        return self.registry.index(ready_only)


def select_outputs(response: InferResponse, request: InferRequest) -> list[Tensor]:
    """Only the requested outputs, in request order (done here, centrally, not by each model)."""
    by_name = {t.name: t for t in response.outputs}
    selected = []
    for wanted in request.outputs or ():
        tensor = by_name.get(wanted.name)
        if tensor is None:
            raise InvalidInput(f"Unexpected inference output '{wanted.name}' for model '{request.model_name}'")
        selected.append(tensor)
    return selected


def _deadline_from_us(value: Any) -> float | None:
    """Triton's per-request `timeout` parameter (microseconds) as a time.monotonic() deadline; 0 means none."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidInput("request parameter 'timeout' must be a non-negative number of microseconds")
    return time.monotonic() + value / 1e6 if value else None


def deadline_from_ms(value: str | bytes) -> float:
    """The `x-request-timeout-ms` header as a time.monotonic() deadline."""
    try:
        ms = float(value)
    except ValueError:
        raise InvalidInput("x-request-timeout-ms must be a number of milliseconds") from None
    if not ms > 0 or ms != ms or ms == float("inf"):
        raise InvalidInput("x-request-timeout-ms must be a positive number of milliseconds")
    return time.monotonic() + ms / 1000


def _bytes(body: Body) -> bytes:
    if callable(body):
        return body()
    return b"".join(body) if isinstance(body, list) else body


def _content_type(headers: Mapping[str, str], given: str | None) -> str:
    return given if given is not None else headers.get("content-type", "")
