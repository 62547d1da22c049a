"""Server REST transport: the ASGI app — routing V1/V2 paths to the DataPlane, errors from STATUS_TABLE."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

import orjson

from modelplane.protocol.codecs.v2 import binary_outputs, decode_request, dumps, encode_response
from modelplane.protocol.errors import (
    InvalidInput,
    MethodNotAllowed,
    ModelplaneError,
    RouteNotFound,
    status_of,
)
from modelplane.protocol.openai.responses import model_list as openai_models
from modelplane.protocol.openai.responses import model_object as openai_model
from modelplane.protocol.types import InferResponse
from modelplane.server.dataplane import DataPlane, deadline_from_ms
from modelplane.server.metrics import Metrics
from modelplane.server.multimodel import cache_header
from modelplane.server.rest import cloudevents
from modelplane.server.rest.generate import generate
from modelplane.server.rest.http import (
    JSON,
    Receive,
    Scope,
    Send,
    header_dict,
    read_body,
    respond,
    respond_json,
)
from modelplane.server.rest.openai import OpenAIRoutes

log = logging.getLogger("modelplane.rest")

IHCL = b"inference-header-content-length"
TIMEOUT = b"x-request-timeout-ms"
JSON_CONTENT_TYPES = frozenset(
    {"application/json", "application/cloudevents+json", "application/ld+json", "application/octet-stream"}
)


class RestApp:
    """ASGI application serving KServe V1 and the Open Inference Protocol (V2) over HTTP/1.1."""

    def __init__(
        self,
        dataplane: DataPlane,
        metrics: Metrics,
        max_body_bytes: int = 64 * 2**20,
        cloudevent_config: cloudevents.CloudEventConfig | None = None,
    ) -> None:
        self.dataplane = dataplane
        self.openai = OpenAIRoutes(dataplane.generation, max_body_bytes)
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.ce_config = cloudevent_config or cloudevents.CloudEventConfig.from_env()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        try:
            if path.startswith("/v2/models/"):
                name, version, action = _v2_route(path[11:])
                if action == "infer":  # the hot path: no coroutine between here and the data plane
                    _allow(method, "POST")
                    await self._infer(name, version, scope, receive, send)
                else:
                    await self._v2_model(name, version, action, method, receive, send)
            elif path.startswith("/v1/models/"):
                await self._v1_model(path[11:], method, scope, receive, send)
            else:
                await self._other(path, method, scope, receive, send)
        except Exception as exc:
            status = status_of(exc).http
            if not isinstance(exc, ModelplaneError):
                log.exception("unhandled error on %s %s", method, path)
                message = f"{type(exc).__name__} : {exc}"
            else:
                message = exc.message
            self.dataplane.failed(_inference_model(path), "rest", str(status))
            extra = getattr(exc, "headers", None) or {}
            await respond_json(send, status, {"error": message}, [(k.encode(), v.encode()) for k, v in extra.items()])

    # --- /v2/models/... ------------------------------------------------------------------------------
    async def _v2_model(
        self, name: str, version: str | None, action: str, method: str, receive: Receive, send: Send
    ) -> None:
        dp = self.dataplane
        if action in ("generate", "generate_stream"):
            _allow(method, "POST")
            stream = action == "generate_stream"
            await generate(dp.generation, name, stream, self.max_body, receive, send)
            return
        _allow(method, "GET")
        if action == "ready":
            ready = dp.model_ready(name, version)
            await respond_json(send, 200 if ready else 503, {"name": name, "ready": ready})
        elif action == "":
            await respond_json(send, 200, await dp.model_metadata(name, version))
        else:
            raise RouteNotFound("Not Found")

    async def _infer(self, name: str, version: str | None, scope: Scope, receive: Receive, send: Send) -> None:
        header_length: int | None = None
        declared: int | None = None
        deadline: float | None = None
        for key, value in scope["headers"]:
            if key == IHCL:
                header_length = _int_header(value, "Inference-Header-Content-Length")
            elif key == TIMEOUT:
                deadline = deadline_from_ms(value)
            elif key == b"content-length":
                declared = _int_header(value, "Content-Length")
        dp = self.dataplane
        entry = await dp.admit(name)  # 404 / 503 / 429 before reading a large body
        body = await read_body(receive, self.max_body, declared)
        request = decode_request(body, header_length, name)
        request.model_version = version
        headers_in = header_dict(scope)
        event = dp.received(name, headers_in, body)  # headers are parsed only if a model or the logger reads them
        response, extra = await dp.infer(request, headers_in, entry, deadline, partial(_gone, receive))
        parts, ihcl = encode_response(response, binary_outputs(request, response))
        headers = [(k.encode(), v.encode()) for k, v in extra.items()] if extra else []
        if dp.cache is not None:
            headers.append(cache_header())
        if ihcl is None:
            headers.append((b"content-type", JSON))
        else:
            headers.append((IHCL, str(ihcl).encode()))
            headers.append((b"content-type", b"application/octet-stream"))
        await respond(send, 200, parts, headers)
        dp.answered(name, "rest", "200", event, headers_in, parts)

    # --- /v1/models/... ------------------------------------------------------------------------------
    async def _v1_model(self, rest: str, method: str, scope: Scope, receive: Receive, send: Send) -> None:
        name, sep, verb = rest.rpartition(":")
        if not sep:
            _allow(method, "GET")
            ready = self.dataplane.model_ready(rest)
            doc = {"name": rest, "ready": ready}
            if ready and any(n == rest for n, _ in self.dataplane.generation.served()):  # also OpenAI's model object
                doc.update(openai_model(*self.dataplane.generation.served_model(rest)))
            await respond_json(send, 200 if ready else 503, doc)
            return
        if verb not in ("predict", "explain") or not name or "/" in name:
            raise RouteNotFound("Not Found")
        _allow(method, "POST")
        dp = self.dataplane
        entry = await dp.admit(name, verb)  # 404 / 503 (and 429 for a prediction) before reading the body
        headers = header_dict(scope)
        declared = headers.get("content-length")
        body = await read_body(
            receive, self.max_body, _int_header(declared.encode(), "Content-Length") if declared else None
        )
        timeout = headers.get("x-request-timeout-ms")
        deadline = deadline_from_ms(timeout) if timeout is not None else None
        payload, event = self._decode_v1(body, headers)
        logged = dp.received(name, headers, body)
        result, extra = await dp.predict_v1(name, payload, headers, verb, entry, deadline, partial(_gone, receive))
        out_headers = [(k.encode(), v.encode()) for k, v in extra.items()]
        if dp.cache is not None:
            out_headers.append(cache_header())
        if event is not None:
            body_out, ce_headers = cloudevents.encode(dumps(_v1_jsonable(result)), event, self.ce_config, name)
            out_headers.extend(ce_headers)
        elif isinstance(result, (bytes, str)):
            body_out = result.encode() if isinstance(result, str) else result
        else:
            body_out = dumps(_v1_jsonable(result))
            out_headers.append((b"content-type", JSON))
        await respond(send, 200, [body_out], out_headers)
        dp.answered(name, "rest", "200", logged, headers, body_out)

    def _decode_v1(self, body: bytes, headers: Mapping[str, str]) -> tuple[Any, cloudevents.IncomingEvent | None]:
        if cloudevents.is_binary_event(headers):
            return cloudevents.decode_binary(body, headers)
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype and ctype not in JSON_CONTENT_TYPES:
            return body, None
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"Unrecognized request format: {exc}") from None
        if ctype == "application/cloudevents+json" or (
            isinstance(doc, dict) and doc.keys() >= cloudevents.STRUCTURED_KEYS
        ):
            return cloudevents.decode_structured(doc)
        return doc, None

    # --- everything else -----------------------------------------------------------------------------
    async def _other(self, path: str, method: str, scope: Scope, receive: Receive, send: Send) -> None:
        dp = self.dataplane
        if method == "POST" and path.startswith("/v2/repository/"):
            await self._repository(path[15:], scope, receive, send)
            return
        if path not in _GET_ROUTES:
            rest = self.openai.handles(path, method)
            if rest is None:
                raise RouteNotFound("Not Found")
            await self.openai(rest, method, scope, receive, send)
            return
        _allow(method, "GET")
        handler = _GET_ROUTES[path]
        if handler is None:  # /metrics
            body, ctype = self.metrics.exposition()
            await respond(send, 200, [body], [(b"content-type", ctype.encode())])
            return
        status, doc = handler(dp)
        await respond_json(send, status, doc)

    async def _repository(self, rest: str, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive, self.max_body, None)
        if rest == "index":
            ready_only = False
            if body.strip():
                try:
                    doc = orjson.loads(body)
                except orjson.JSONDecodeError as exc:
                    raise InvalidInput(f"Unrecognized request format: {exc}") from None
                ready_only = bool(isinstance(doc, dict) and doc.get("ready"))
            await respond_json(send, 200, self.dataplane.index(ready_only))
            return
        parts = rest.split("/")
        if len(parts) != 3 or parts[0] != "models" or parts[2] not in ("load", "unload") or not parts[1]:
            raise RouteNotFound("Not Found")
        name, action = parts[1], parts[2]
        if action == "load":
            await self.dataplane.load(name)
            await respond_json(send, 200, {"name": name, "load": True})
        else:
            await self.dataplane.unload(name)
            await respond_json(send, 200, {"name": name, "unload": True})


def _ready(dp: DataPlane) -> tuple[int, Any]:
    ready = dp.ready()
    return (200, {"ready": True}) if ready else (503, {"ready": False, "error": "Server is not ready."})


_GET_ROUTES = {
    "/": lambda dp: (200, {"status": "alive"}),
    "/v1/models": lambda dp: (200, _v1_models(dp)),
    "/v2": lambda dp: (200, dp.metadata()),
    "/v2/": lambda dp: (200, dp.metadata()),
    "/v2/health/live": lambda dp: (200, {"live": dp.live()}),
    "/v2/health/ready": _ready,
    "/v2/models": lambda dp: (200, {"models": dp.names()}),
    "/metrics": None,
}


def _v1_models(dp: DataPlane) -> dict[str, Any]:
    """KServe's model list; with models that serve the OpenAI routes, OpenAI's too (`object`, `data`): both clients
    read their keys from one document."""
    served = dp.generation.served()
    return {"models": dp.names(), **(openai_models(served) if served else {})}


async def _gone(receive: Receive) -> None:
    """Completes when the client disconnects (the body is read: the next ASGI message is the disconnect)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _inference_model(path: str) -> str:
    """The model an inference route addresses ("" for any other route), for request counters."""
    if path.startswith("/v1/models/") and ":" in path:
        return path[11:].rpartition(":")[0]
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        return path[11:].split("/", 1)[0]
    return ""


def _allow(method: str, expected: str) -> None:
    if method != expected:
        raise MethodNotAllowed(f"Method {method} not allowed; use {expected}")


def _int_header(value: bytes, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{name} header must be an integer, got {value[:32]!r}") from None


def _v1_jsonable(result: Any) -> Any:
    if isinstance(result, InferResponse):
        return orjson.loads(encode_response(result, [False] * len(result.outputs))[0][0])
    return result


def _v2_route(rest: str) -> tuple[str, str | None, str]:
    """`{name}[/versions/{version}][/{action}]` (what follows /v2/models/) as (name, version, action)."""
    parts = rest.split("/")
    name, version, tail = parts[0], None, parts[1:]
    if len(tail) >= 2 and tail[0] == "versions":
        version, tail = tail[1], tail[2:]
    if len(tail) > 1 or not name:
        raise RouteNotFound("Not Found")
    return name, version, tail[0] if tail else ""


async def _lifespan(receive: Receive, send: Send) -> None:
    """ASGI lifespan (uvicorn may send it): nothing to start or stop, the server process owns the models."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
