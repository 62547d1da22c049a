"""Local backend: the embedded gateway — one port in front of every InferenceService (the ingress + Knative
routing role): host or path routing, component choice, weighted traffic split; each revision's requests then go
through its RevisionPool (containerConcurrency breaker, queue, activator at zero)."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelplane.backends.local import openai_routing as openai
from modelplane.backends.local.activator import Endpoint, ReplicaView, RevisionPool
from modelplane.backends.local.forward import (
    BadTarget,
    NoReadyReplica,
    NoRoute,
    RepositoryClosed,
    Unreachable,
    forward,
)
from modelplane.backends.local.gateway_http import DRAIN_BYTES, declared_length, drain, relay
from modelplane.backends.local.mesh import MeshRegistry, Placement
from modelplane.backends.local.upstream import HOP_BY_HOP, Stream, Upstream, UpstreamError
from modelplane.backends.seam import REPOSITORY_ANNOTATION
from modelplane.protocol.errors import InvalidInput, ModelplaneError, PayloadTooLarge
from modelplane.server.rest.http import read_body, respond_json

Scope = dict[str, Any]
COMPONENTS = ("predictor", "transformer", "explainer")
DEFAULT_TIMEOUT_S = 300.0  # Knative's default request timeout
DEFAULT_MAX_BODY = 64 * 2**20  # the model server's own default, so both hops refuse the same bodies
# a request target is forwarded exactly as the client encoded it, so it may hold only visible ASCII
_UNSAFE_TARGET = re.compile(rb"[^\x21-\x7e]")


@dataclass
class Route:
    """Where one InferenceService's traffic goes: per component, (revision, percent) targets; tags by name."""

    traffic: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)  # "latest"/"prev" -> revision (tag routing)
    timeouts: dict[str, float] = field(default_factory=dict)  # component -> seconds (the component's `timeout`)
    activatable: frozenset[str] = frozenset()  # revisions that may be at zero: requests wait for the activator
    concurrency: dict[str, int] = field(default_factory=dict)  # revision -> containerConcurrency (0: unlimited)
    repository_api: bool = False  # forward V2 repository load/unload (the isvc opted in with REPOSITORY_ANNOTATION)
    prefix_routing: bool = True  # generation requests sharing a prompt prefix prefer one replica (bounded load)
    model_routing: bool = False  # many models per replica: a request goes where its model is (backends/local/mesh.py)
    aliases: dict[str, str] = field(default_factory=dict)  # vmodel -> concrete model (ModelMesh InferenceServices)


class Gateway:
    """ASGI app. `replicas` tells which replicas of a revision are ready or starting; `activate(revision, held)` is
    called (on the event loop, must not block) while requests wait for a revision that has no ready replica."""

    def __init__(
        self,
        replicas: ReplicaView,
        domain: str = "example.com",
        activate: Callable[[str, int], None] | None = None,
        queue_depth: int = 10_000,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        mesh_registry: Callable[[str], MeshRegistry] | None = None,
    ) -> None:
        self.max_body = max_body_bytes
        self.mesh_registry = mesh_registry  # revision -> the registry its placement shares (None: in memory)
        self.routes: dict[tuple[str, str], Route] = {}
        self.replicas = replicas
        self.domain = domain
        self.activate = activate or (lambda revision, held: None)
        self.queue_depth = queue_depth
        self.pools: dict[str, RevisionPool] = {}
        self._upstreams: dict[str, Upstream] = {}
        self.random = random.Random()

    def pool(self, revision: str, route: Route) -> RevisionPool:
        pool = self.pools.get(revision)
        if pool is None:
            pool = self.pools[revision] = RevisionPool(revision, self.replicas, self.activate)
        pool.concurrency = route.concurrency.get(revision, 0)
        pool.queue_depth = self.queue_depth
        if route.model_routing and pool.placement is None:
            pool.placement = Placement(self.mesh_registry(revision) if self.mesh_registry else None)
        return pool

    def forget(self, revision: str) -> None:
        """The revision is gone: drop its pool (and its meter); requests waiting in it get a 503 within 50 ms."""
        pool = self.pools.pop(revision, None)
        if pool is not None:
            pool.closed = True

    def set_route(self, namespace: str, name: str, route: Route | None) -> None:
        if route is None:
            self.routes.pop((namespace, name), None)
        else:
            self.routes[(namespace, name)] = route

    # --- routing --------------------------------------------------------------------------------------------
    def resolve(self, host: str, path: str) -> tuple[Route, str | None, str | None, str]:
        """(route, component or None, tag or None, upstream path) for a request, or LookupError."""
        if path.startswith("/serving/"):
            parts = path.split("/", 4)
            if len(parts) < 4:
                raise LookupError("path must be /serving/{namespace}/{name}/...")
            namespace, name = parts[2], parts[3]
            upstream = "/" + (parts[4] if len(parts) > 4 else "")
            return (*self._find(namespace, name), upstream)
        hostname = host.split(":", 1)[0]
        suffix = "." + self.domain
        if not hostname.endswith(suffix):
            raise LookupError(
                f"no route for host {hostname!r}: use {{name}}.{{namespace}}.{self.domain} or /serving/..."
            )
        name, _, namespace = hostname[: -len(suffix)].partition(".")
        return (*self._find(namespace, name), path)

    def _find(self, namespace: str, name: str) -> tuple[Route, str | None, str | None]:
        route = self.routes.get((namespace, name))
        if route is not None:
            return route, None, None
        for tag in ("latest", "prev"):
            if name.startswith(tag + "-"):
                rest = name[len(tag) + 1 :]
                for component in COMPONENTS:
                    base = rest.removesuffix("-" + component)
                    if (namespace, base) in self.routes and rest != base:
                        return self.routes[(namespace, base)], component, tag
        for component in COMPONENTS:
            base = name.removesuffix("-" + component)
            if base != name and (namespace, base) in self.routes:
                return self.routes[(namespace, base)], component, None
        raise LookupError(f"InferenceService {namespace}/{name} not found")

    def component_for(self, route: Route, component: str | None, path: str) -> str:
        if component is None:
            if path.endswith(":explain") and "explainer" in route.traffic:
                component = "explainer"
            else:
                component = "transformer" if "transformer" in route.traffic else "predictor"
        return component

    def pick(self, route: Route, component: str, tag: str | None) -> str:
        """The revision for this request: by tag, else by weight among the targets that have a ready replica or
        may be activated (a revision at zero gets its share; a crashed one is skipped while another can serve, and
        waited for when none can)."""
        if tag is not None:
            revision = route.tags.get(tag)
            if revision is None:
                raise LookupError(f"no revision tagged {tag}")
            return revision
        targets = [(rev, pct) for rev, pct in route.traffic.get(component, []) if pct > 0]
        live = [(rev, pct) for rev, pct in targets if rev in route.activatable or self.replicas.ready(rev)]
        if not live:  # a replica is being replaced (it crashed): wait for it, as the activator does at zero
            live = [(rev, pct) for rev, pct in targets if self.replicas.starting(rev)]
        if not live:
            raise ConnectionError(f"no ready replica for the {component}")
        point = self.random.uniform(0, sum(p for _, p in live))
        for rev, pct in live:
            point -= pct
            if point <= 0:
                return rev
        return live[-1][0]

    def select(self, host: str, path: str, mutation: Callable[[str], bool]) -> tuple[Route, str, str, str]:
        """(route, component, revision, upstream path) for a request; the HTTP and gRPC sides both start here.
        `mutation(upstream path)`: the request is a V2 repository load/unload. Raises NoRoute, NoReadyReplica,
        RepositoryClosed."""
        try:
            route, component, tag, upstream = self.resolve(host, path)
            component = self.component_for(route, component, upstream)
            revision = self.pick(route, component, tag)
        except LookupError as exc:
            raise NoRoute(str(exc)) from None
        except ConnectionError as exc:
            raise NoReadyReplica(str(exc)) from None
        if not route.repository_api and mutation(upstream):
            raise RepositoryClosed(f"repository load/unload is not exposed; set {REPOSITORY_ANNOTATION}")
        return route, component, revision, upstream

    def timeout(self, route: Route, component: str) -> float:
        return route.timeouts.get(component, DEFAULT_TIMEOUT_S)

    # --- ASGI -----------------------------------------------------------------------------------------------
    async def close(self) -> None:
        """The platform is stopping: close every upstream connection pool."""
        for pool in self._upstreams.values():
            pool.close()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        try:
            status, headers, body = await self._http(scope, receive)
        except ModelplaneError as exc:
            extra = [(k.encode(), v.encode()) for k, v in exc.headers.items()]
            if isinstance(exc, PayloadTooLarge):
                await drain(receive, DRAIN_BYTES)  # read and drop the rest: closing on unread data resets the 413
                extra.append((b"connection", b"close"))
            await respond_json(send, exc.status.http, {"error": exc.message}, extra)
            return
        if isinstance(body, Stream):
            await relay(status, headers, body, receive, send)
            return
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _http(self, scope: Scope, receive: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes | Stream]:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        query: bytes = scope.get("query_string", b"")
        if _UNSAFE_TARGET.search(raw_path) or _UNSAFE_TARGET.search(query):
            raise BadTarget("the request target must be visible ASCII (percent-encode the rest)")
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        path = raw_path.decode("ascii")
        method = scope["method"]
        try:
            selected: tuple[Route, str, str, str] | None = self.select(host, path, _repository_mutation)
        except NoRoute:
            if not openai.addressed_by_body(path):
                raise
            selected = None  # an OpenAI route on no InferenceService's host: the body's `model` picks one
        try:
            body = await read_body(receive, self.max_body, declared_length(scope["headers"]))
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP]
        if selected is None:
            if openai.is_model_list(path):
                return 200, [(b"content-type", b"application/json")], await self._all_models(path, headers)
            namespace, name = openai.route_for(self.routes, openai.model_field(body))
            selected = self.select("", f"/serving/{namespace}/{name}{path}", _repository_mutation)
        route, component, revision, upstream = selected
        if route.aliases:
            upstream = aliased(upstream, route.aliases)
        target = upstream + ("?" + query.decode("ascii") if query else "")
        affinity = openai.prefix_key(upstream, body) if route.prefix_routing and method == "POST" else None
        model = model_in_path(upstream) if route.model_routing else None
        return await self._send(route, component, revision, method, target, headers, body, affinity, model)

    async def _send(
        self,
        route: Route,
        component: str,
        revision: str,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        affinity: int | None = None,
        model: str | None = None,
    ) -> tuple[int, list[tuple[bytes, bytes]], Any]:
        pool = self.pool(revision, route)

        async def call(endpoint: Endpoint) -> tuple[int, list[tuple[bytes, bytes]], bytes | Stream]:
            try:
                answer = await self.upstream(endpoint.http).request(method, target, headers, body)
            except ValueError as exc:  # a header the gateway will not put on the wire
                raise BadTarget(str(exc)) from None
            except UpstreamError as exc:
                raise Unreachable(f"no replica of {revision} answered: {exc}") from exc
            if model is not None and pool.placement is not None and load_failed(answer):
                pool.placement.failed(model, endpoint.http, bytes(answer[2])[:500].decode("utf-8", "replace"))
                raise LoadFailed(answer)  # tried on another replica; the last answer goes back if all fail
            return answer

        timeout = self.timeout(route, component)
        try:
            return await forward(pool, timeout, component, call, _no_answer, _http_address, affinity, _streamed, model)
        except LoadFailed as exc:
            return exc.answer

    async def _all_models(self, path: str, headers: list[tuple[bytes, bytes]]) -> bytes:
        """`GET /openai/v1/models` on the gateway itself: every model the ready predictors serve (a predictor at
        zero is not woken to be listed)."""
        asks = []
        for route in list(self.routes.values()):
            try:
                revision = self.pick(route, "predictor", None)
            except (LookupError, ConnectionError):
                continue
            if self.replicas.ready(revision):
                asks.append(self._send(route, "predictor", revision, "GET", path, headers, b""))
        answers = await asyncio.gather(*asks, return_exceptions=True)
        return openai.merge_model_lists(a for a in answers if isinstance(a, tuple) and a[0] == 200)

    def upstream(self, url: str) -> Upstream:
        """The keep-alive pool to one replica (the autoscaler's LLM scrape shares it)."""
        pool = self._upstreams.get(url)
        if pool is None:
            pool = self._upstreams[url] = Upstream(url)
        return pool


def _streamed(result: tuple[int, Any, Any]) -> Stream | None:
    return result[2] if isinstance(result[2], Stream) else None


def _no_answer(exc: Exception) -> bool:
    return isinstance(exc, Unreachable | LoadFailed)


class LoadFailed(Exception):
    """The replica could not load the request's model (its answer says `x-model-cache: failed`)."""

    def __init__(self, answer: tuple[int, list[tuple[bytes, bytes]], Any]) -> None:
        super().__init__("model load failed")
        self.answer = answer


def load_failed(answer: tuple[int, list[tuple[bytes, bytes]], Any]) -> bool:
    status, headers, _ = answer
    return status == 503 and (b"x-model-cache", b"failed") in headers


def model_in_path(path: str) -> str | None:
    """The model a data-plane path names: /v2/models/{m}/..., /v1/models/{m}:verb (None for anything else)."""
    for prefix in ("/v2/models/", "/v1/models/"):
        if path.startswith(prefix):
            rest = path[len(prefix) :].split("?", 1)[0]
            name = rest.split("/", 1)[0].split(":", 1)[0]
            return name or None
    return None


def aliased(path: str, aliases: dict[str, str]) -> str:
    """The data-plane path with a vmodel's name replaced by its concrete model's (unchanged for other models)."""
    name = model_in_path(path)
    target = aliases.get(name) if name is not None else None
    if target is None:
        return path
    cut = path.index("/models/") + len("/models/")
    return path[:cut] + target + path[cut + len(name) :]  # type: ignore[arg-type]


def _http_address(endpoint: Endpoint) -> str:
    return endpoint.http.removeprefix("http://")


def _repository_mutation(path: str) -> bool:
    """A V2 repository call other than the read-only index (decoded as the replica will decode it)."""
    if "%" in path:
        from urllib.parse import unquote

        path = unquote(path)
    path = path.split("?", 1)[0]
    return path.startswith("/v2/repository/") and path.rstrip("/") != "/v2/repository/index"
