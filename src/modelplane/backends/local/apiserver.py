"""Local backend: the control-plane HTTP API with Kubernetes-style paths (create, get, list, update, delete, watch)
for InferenceService, ServingRuntime and ClusterServingRuntime, over the SQLite store."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import orjson

from modelplane.backends.local.auth import ApiError, ApiGuard
from modelplane.backends.local.store import CorruptObject, Store
from modelplane.control import trainedmodel
from modelplane.control.api import KINDS, InferenceService, TrainedModel, parse
from modelplane.control.runtime_webhook import runtimes_beside, validate_runtime
from modelplane.control.strict import MODES, unknown_fields
from modelplane.control.webhook import ValidationError, default, validate
from modelplane.server.rest.http import respond_json

PLURALS = {
    "inferenceservices": ("InferenceService", "v1beta1", True),
    "servingruntimes": ("ServingRuntime", "v1alpha1", True),
    "clusterservingruntimes": ("ClusterServingRuntime", "v1alpha1", False),
    "trainedmodels": ("TrainedModel", "v1alpha1", True),
}
SERVER_OWNED = ("uid", "creationTimestamp", "generation", "deletionTimestamp", "managedFields")
QUERY_KEYS = {"watch", "resourceVersion", "apply", "fieldValidation"}
BOOLS = {"true": True, "1": True, "false": False, "0": False}
MAX_BODY = 4 * 2**20  # one manifest; Kubernetes' own request limit is 3 MiB
PATH = re.compile(
    r"^/apis/serving\.kserve\.io/(?P<version>v1beta1|v1alpha1)"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[a-z]+)(?:/(?P<name>[^/]+))?/?$"
)


def admit(doc: dict[str, Any], store: Store, max_scale_limit: int = 0) -> dict[str, Any]:
    """Parse, default and validate an object as KServe's webhooks would; returns the stored form."""
    try:
        obj = parse(doc)
    except ValueError as exc:
        raise ApiError(400, "BadRequest", str(exc)) from None
    if isinstance(obj, InferenceService):
        default(obj)
        old_doc = store.get("InferenceService", obj.metadata.namespace, obj.metadata.name)
        try:
            validate(obj, InferenceService.model_validate(old_doc) if old_doc else None, max_scale_limit)
        except ValidationError as exc:
            raise ApiError(422, "Invalid", str(exc)) from None
        obj.status = old_doc.get("status", {}) if old_doc else {}
    elif isinstance(obj, TrainedModel):
        old_tm = store.get("TrainedModel", obj.metadata.namespace, obj.metadata.name)
        try:
            trainedmodel.validate(obj, TrainedModel.model_validate(old_tm) if old_tm else None)
        except ValidationError as exc:
            raise ApiError(422, "Invalid", str(exc)) from None
        obj.metadata.labels.setdefault("inferenceservice", obj.spec.inference_service)  # as KServe labels them
        obj.status = old_tm.get("status", {}) if old_tm else {}
    else:
        if obj.kind == "ClusterServingRuntime":
            obj.metadata.namespace = ""
        try:
            validate_runtime(obj, runtimes_beside(obj, store.list(obj.kind, obj.metadata.namespace or None)))
        except ValidationError as exc:
            raise ApiError(422, "Invalid", str(exc)) from None
    return obj.dump()


class ApiServer:
    """`guard` decides who may call (token, Origin, Host, content type); `max_scale_limit()` is the platform's
    current ceiling on replica counts."""

    def __init__(
        self,
        store: Store,
        metrics: Callable[[], bytes] | None = None,
        guard: ApiGuard | None = None,
        max_scale_limit: Callable[[], int] = lambda: 0,
        instance: str = "",
    ) -> None:
        self.instance = instance  # this platform's id, on every response: the CLI checks it is talking to its own
        self.store = store
        self.metrics = metrics  # renders the platform's Prometheus metrics (text exposition format)
        self.guard = guard
        self.max_scale_limit = max_scale_limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"x-modelplane-instance", self.instance.encode())]  # handle() adds Warning and apply results
        try:
            if self.guard is not None:
                self.guard.check(scope["method"], scope["path"], scope["headers"])
            status, doc = await self.handle(scope, receive, send, headers)
        except CorruptObject as exc:  # one unreadable object: this call fails with the way out, no other does
            status, doc = 500, ApiError(500, "InternalError", str(exc)).body()
        except ApiError as exc:
            status, doc = exc.code, exc.body()
        if doc is not None:
            await respond_json(send, status, doc, headers)

    async def handle(
        self, scope: dict[str, Any], receive: Any, send: Any, headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, Any]:
        path, method = scope["path"], scope["method"]
        if path == "/healthz":
            return 200, {"status": "ok", "instance": self.instance}
        if path == "/metrics" and self.metrics is not None:
            body = self.metrics()
            headers = [(b"content-type", b"text/plain; version=0.0.4"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return 200, None
        m = PATH.match(path)
        if m and m["plural"] == "revisions" and m["version"] == "v1beta1":
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "revisions are made by the platform; they are read-only")
            return 200, self._revisions(m["ns"], m["name"])
        if not m or m["plural"] not in PLURALS:
            raise ApiError(404, "NotFound", f"no API at {path}")
        kind, version, namespaced = PLURALS[m["plural"]]
        if version != m["version"]:
            raise ApiError(404, "NotFound", f"{m['plural']} is served at serving.kserve.io/{version}")
        ns = (m["ns"] or "default") if namespaced else ""
        name = m["name"]
        query = _query(scope.get("query_string", b""))
        if method == "GET" and name is None and query.get("watch"):
            await self._watch(kind, m["ns"], int(query.get("resourceVersion") or 0), receive, send)
            return 200, None
        builtin = _builtins() if kind == "ClusterServingRuntime" else {}
        if method == "GET":
            if name is None:
                items = self.store.list(kind, m["ns"] if namespaced else None)
                items = sorted([*builtin.values(), *items], key=lambda i: i["metadata"]["name"])
                return 200, {"apiVersion": f"serving.kserve.io/{version}", "kind": f"{kind}List", "items": items}
            found = builtin.get(name) or self.store.get(kind, ns, name)
            if found is None:
                raise ApiError(404, "NotFound", f'{m["plural"]}.serving.kserve.io "{name}" not found')
            return 200, found
        if method in ("POST", "PUT", "DELETE") and name in builtin:
            raise ApiError(
                405,
                "MethodNotAllowed",
                f"the built-in ClusterServingRuntime {name} is read-only; apply one of another name",
            )
        if method in ("POST", "PUT"):
            doc = _document(await _body(receive, MAX_BODY), scope["headers"])
            _check_identity(doc, kind, m["plural"], ns if namespaced else None)
            unknown = unknown_fields(doc, KINDS[kind]) if query.get("fieldValidation", "Warn") != "Ignore" else []
            if unknown and query.get("fieldValidation") == "Strict":
                raise ApiError(
                    400, "BadRequest", f"{kind} in version {version} cannot be handled: " + "; ".join(unknown)
                )
            headers += [(b"warning", f'299 - "{w}"'.encode("ascii", "backslashreplace")) for w in unknown[:50]]
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
            if method == "POST" and exists is not None and not query.get("apply"):
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{m["plural"]}.serving.kserve.io "{doc["metadata"].get("name")}" already exists',
                )
            if method == "PUT" and exists is None:
                raise ApiError(404, "NotFound", f'{m["plural"]}.serving.kserve.io "{name}" not found')
            if doc["metadata"].get("name") in builtin:
                raise ApiError(
                    405,
                    "MethodNotAllowed",
                    f"the built-in ClusterServingRuntime {doc['metadata']['name']} is read-only; use another name",
                )
            admitted = admit(doc, self.store, self.max_scale_limit())
            if exists is not None and _same(admitted, exists):
                headers.append((b"x-modelplane-apply", b"unchanged"))
                return 200, exists
            headers.append((b"x-modelplane-apply", b"created" if exists is None else b"configured"))
            return (201 if exists is None else 200), self.store.put(admitted)
        if method == "DELETE" and name is not None:
            if not self.store.delete(kind, ns, name):
                raise ApiError(404, "NotFound", f'{m["plural"]}.serving.kserve.io "{name}" not found')
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name}}
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")

    def _revisions(self, namespace: str | None, name: str | None) -> dict[str, Any]:
        """Revisions as objects (Knative's, on Kubernetes): the template, and traffic and replicas from the status."""
        statuses: dict[tuple[str, str], dict[str, Any]] = {}
        items = []
        for rev in self.store.all_revisions(namespace):
            if name is not None and rev.name != name:
                continue
            key = (rev.namespace, rev.isvc)
            if key not in statuses:
                statuses[key] = ((self.store.get("InferenceService", *key) or {}).get("status") or {}).get(
                    "components"
                ) or {}
            component = statuses[key].get(rev.component) or {}
            traffic = sum(t.get("percent", 0) for t in component.get("traffic", []) if t["revisionName"] == rev.name)
            scaling = next((a for a in component.get("autoscaling", []) if a["revisionName"] == rev.name), {})
            items.append(
                {
                    "apiVersion": "serving.kserve.io/v1beta1",
                    "kind": "Revision",
                    "metadata": {
                        "name": rev.name,
                        "namespace": rev.namespace,
                        "creationTimestamp": rev.created,
                        "labels": {"serving.kserve.io/inferenceservice": rev.isvc, "component": rev.component},
                    },
                    "spec": rev.template,
                    "status": {
                        "traffic": traffic,
                        "desiredReplicas": scaling.get("desiredReplicas", 0),
                        "actualReplicas": scaling.get("actualReplicas", 0),
                        "readyReplicas": scaling.get("readyReplicas", 0),
                    },
                }
            )
        if name is not None:
            if not items:
                raise ApiError(404, "NotFound", f'revisions "{name}" not found')
            return items[0]
        return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "RevisionList", "items": items}

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


async def _body(receive: Any, limit: int) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "RequestEntityTooLarge", f"the request body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _same(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Nothing a user can change differs (spec, labels, annotations): re-applying it changes nothing."""
    keys = ("labels", "annotations")
    return new.get("spec") == old.get("spec") and all(
        (new["metadata"].get(k) or {}) == (old["metadata"].get(k) or {}) for k in keys
    )


def _builtins() -> dict[str, dict[str, Any]]:
    """The built-in ClusterServingRuntimes as API objects (listed and read like stored ones, never written)."""
    from modelplane.control.runtimes import builtin_runtimes

    out = {}
    for runtime in builtin_runtimes():
        doc = runtime.dump()
        doc["metadata"]["namespace"] = ""
        doc["metadata"].setdefault("annotations", {})["modelplane.io/built-in"] = "true"
        out[runtime.metadata.name] = doc
    return out


def _query(raw: bytes) -> dict[str, Any]:
    """The query parameters this API knows, typed; anything else is a 400 naming the parameter."""
    out: dict[str, Any] = {}
    for pair in raw.decode("latin-1").split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        if key not in QUERY_KEYS:
            raise ApiError(
                400, "BadRequest", f"unknown query parameter {key!r}; known: {', '.join(sorted(QUERY_KEYS))}"
            )
        if key == "fieldValidation":
            if value not in MODES:
                raise ApiError(400, "BadRequest", f"fieldValidation must be one of {', '.join(MODES)}, got {value!r}")
            out[key] = value
        elif key == "resourceVersion":
            if not value.isdigit():
                raise ApiError(400, "BadRequest", f"resourceVersion must be a non-negative integer, got {value!r}")
            out[key] = int(value)
        elif value.lower() in BOOLS:
            out[key] = BOOLS[value.lower()]
        else:
            raise ApiError(400, "BadRequest", f"{key} must be true or false, got {value!r}")
    return out


def _document(body: bytes, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The request body as one object: JSON, or YAML when the content type says so."""
    ctype = next((v for k, v in headers if k == b"content-type"), b"").split(b";")[0].strip().lower()
    try:
        if b"yaml" in ctype:
            import yaml

            doc = yaml.safe_load(body)
        else:
            doc = orjson.loads(body)
    except Exception as exc:  # any parser error (orjson, YAML, deep nesting) is the client's
        raise ApiError(
            400, "BadRequest", f"the body is not valid {'YAML' if b'yaml' in ctype else 'JSON'}: {exc}"
        ) from None
    if not isinstance(doc, dict):
        raise ApiError(400, "BadRequest", "the body must be one object")
    return doc


def _check_identity(doc: dict[str, Any], kind: str, plural: str, namespace: str | None) -> None:
    """kind and namespace agree with the URL, metadata is an object, no field the server owns (as Kubernetes)."""
    if doc.get("kind") is not None and doc["kind"] != kind:
        raise ApiError(400, "BadRequest", f"the body's kind {doc['kind']!r} does not match {plural} ({kind})")
    meta = doc.get("metadata", {})
    if not isinstance(meta, dict):
        raise ApiError(400, "BadRequest", "metadata must be an object")
    for key in ("name", "namespace"):
        if key in meta and not isinstance(meta[key], str):
            raise ApiError(400, "BadRequest", f"metadata.{key} must be a string")
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is not None and not (
            isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        ):
            raise ApiError(400, "BadRequest", f"metadata.{key} must map strings to strings")
    if namespace is not None and meta.get("namespace") not in (None, namespace):
        raise ApiError(
            400, "BadRequest", f"the namespace of the body ({meta['namespace']}) does not match the URL ({namespace})"
        )
    owned = [f"metadata.{k}" for k in SERVER_OWNED if k in meta] + (["status"] if doc.get("status") else [])
    if owned:
        raise ApiError(400, "BadRequest", f"{', '.join(owned)} are set by the server; remove them from the request")
