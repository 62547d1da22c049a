"""Local backend: the control-plane HTTP API with Kubernetes-style paths (create, get, list, update, delete, watch)
for InferenceService, ServingRuntime and ClusterServingRuntime, over the SQLite store."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import orjson

from modelplane.control.api import InferenceService, parse
from modelplane.control.store import Store
from modelplane.control.webhook import ValidationError, default, validate

PLURALS = {
    "inferenceservices": ("InferenceService", "v1beta1", True),
    "servingruntimes": ("ServingRuntime", "v1alpha1", True),
    "clusterservingruntimes": ("ClusterServingRuntime", "v1alpha1", False),
}
PATH = re.compile(
    r"^/apis/serving\.kserve\.io/(?P<version>v1beta1|v1alpha1)"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[a-z]+)(?:/(?P<name>[^/]+))?/?$"
)


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def body(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def admit(doc: dict[str, Any], store: Store) -> dict[str, Any]:
    """Parse, default and validate an object as KServe's webhooks would; returns the stored form."""
    try:
        obj = parse(doc)
    except ValueError as exc:
        raise ApiError(400, "BadRequest", str(exc)) from None
    if isinstance(obj, InferenceService):
        default(obj)
        old_doc = store.get("InferenceService", obj.metadata.namespace, obj.metadata.name)
        try:
            validate(obj, InferenceService.model_validate(old_doc) if old_doc else None)
        except ValidationError as exc:
            raise ApiError(422, "Invalid", str(exc)) from None
        obj.status = old_doc.get("status", {}) if old_doc else {}
    if obj.kind == "ClusterServingRuntime":
        obj.metadata.namespace = ""
    return obj.dump()


class ApiServer:
    def __init__(self, store: Store, metrics: Callable[[], bytes] | None = None) -> None:
        self.store = store
        self.metrics = metrics  # renders the platform's Prometheus metrics (text exposition format)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        try:
            status, doc = await self.handle(scope, receive, send)
        except ApiError as exc:
            status, doc = exc.code, exc.body()
        if doc is not None:
            await _json(send, status, doc)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> tuple[int, Any]:
        path, method = scope["path"], scope["method"]
        if path == "/healthz":
            return 200, {"status": "ok"}
        if path == "/metrics" and self.metrics is not None:
            body = self.metrics()
            headers = [(b"content-type", b"text/plain; version=0.0.4"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return 200, None
        m = PATH.match(path)
        if not m or m["plural"] not in PLURALS:
            raise ApiError(404, "NotFound", f"no API at {path}")
        kind, version, namespaced = PLURALS[m["plural"]]
        if version != m["version"]:
            raise ApiError(404, "NotFound", f"{m['plural']} is served at serving.kserve.io/{version}")
        ns = (m["ns"] or "default") if namespaced else ""
        name = m["name"]
        query = dict(p.split("=", 1) for p in scope.get("query_string", b"").decode().split("&") if "=" in p)
        if method == "GET" and name is None and query.get("watch") in ("true", "1"):
            await self._watch(kind, m["ns"], int(query.get("resourceVersion") or 0), receive, send)
            return 200, None
        if method == "GET":
            if name is None:
                items = self.store.list(kind, m["ns"] if namespaced else None)
                return 200, {"apiVersion": f"serving.kserve.io/{version}", "kind": f"{kind}List", "items": items}
            found = self.store.get(kind, ns, name)
            if found is None:
                raise ApiError(404, "NotFound", f'{m["plural"]}.serving.kserve.io "{name}" not found')
            return 200, found
        if method in ("POST", "PUT"):
            body = await _body(receive)
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise ApiError(400, "BadRequest", f"invalid JSON: {exc}") from None
            if not isinstance(doc, dict):
                raise ApiError(400, "BadRequest", "the body must be one object")
            doc.setdefault("kind", kind)
            doc.setdefault("metadata", {})
            if namespaced:
                doc["metadata"].setdefault("namespace", ns)
            if name is not None and doc["metadata"].get("name", name) != name:
                raise ApiError(400, "BadRequest", "the name in the body does not match the URL")
            if name is not None:
                doc["metadata"]["name"] = name
            exists = self.store.get(
                kind, doc["metadata"].get("namespace", ns) if namespaced else "", doc["metadata"].get("name", "")
            )
            if method == "POST" and exists is not None and query.get("apply") != "true":
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{m["plural"]}.serving.kserve.io "{doc["metadata"].get("name")}" already exists',
                )
            if method == "PUT" and exists is None:
                raise ApiError(404, "NotFound", f'{m["plural"]}.serving.kserve.io "{name}" not found')
            stored = self.store.put(admit(doc, self.store))
            return (201 if exists is None else 200), stored
        if method == "DELETE" and name is not None:
            if not self.store.delete(kind, ns, name):
                raise ApiError(404, "NotFound", f'{m["plural"]}.serving.kserve.io "{name}" not found')
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name}}
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")

    async def _watch(self, kind: str, namespace: str | None, since: int, receive: Any, send: Any) -> None:
        """Stream change events (one JSON object per line) until the client goes away or the server stops."""
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
        }
        await send(start)
        version = since
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            while not gone.done():
                for v, k, ns, name, change in self.store.changes_since(version):
                    version = v
                    if k != kind or (namespace and ns != namespace):
                        continue
                    obj = self.store.get(k, ns, name) or {"kind": k, "metadata": {"namespace": ns, "name": name}}
                    line = json.dumps({"type": change, "object": obj}).encode() + b"\n"
                    await send({"type": "http.response.body", "body": line, "more_body": True})
                await asyncio.wait([gone], timeout=0.2)
        finally:
            gone.cancel()


async def _disconnected(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _json(send: Any, status: int, doc: Any) -> None:
    body = orjson.dumps(doc)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
