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

import orjson

from modelplane.backends.local.activator import Endpoint, Gone, QueueFull, ReplicaView, RevisionPool
from modelplane.backends.local.upstream import HOP_BY_HOP, Upstream, UpstreamError
from modelplane.protocol.errors import InvalidInput, PayloadTooLarge
from modelplane.server.rest.http import read_body

Scope = dict[str, Any]
COMPONENTS = ("predictor", "transformer", "explainer")
DEFAULT_TIMEOUT_S = 300.0  # Knative's default request timeout
DEFAULT_MAX_BODY = 64 * 2**20  # the model server's own default, so both hops refuse the same bodies
REPOSITORY_ANNOTATION = "modelplane.io/repository-api"  # "true": the gateway forwards repository load/unload
# a request target is forwarded exactly as the client encoded it, so it may hold only visible ASCII
_UNSAFE_TARGET = re.compile(rb"[^\x21-\x7e]")
DRAIN_BYTES = 64 * 2**20  # at most this much of a refused body is read (and dropped) before the 413
DRAIN_PAUSE_S = 0.2  # a client silent this long has sent all it will (or the body was already complete)


@dataclass
class Route:
    """Where one InferenceService's traffic goes: per component, (revision, percent) targets; tags by name."""

    traffic: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)  # "latest"/"prev" -> revision (tag routing)
    timeouts: dict[str, float] = field(default_factory=dict)  # component -> seconds (the component's `timeout`)
    activatable: frozenset[str] = frozenset()  # revisions that may be at zero: requests wait for the activator
    concurrency: dict[str, int] = field(default_factory=dict)  # revision -> containerConcurrency (0: unlimited)
    repository_api: bool = False  # forward V2 repository load/unload (the isvc opted in with REPOSITORY_ANNOTATION)


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
    ) -> None:
        self.max_body = max_body_bytes
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
        may be activated (a revision at zero gets its share; a crashed one is skipped while another can serve)."""
        if tag is not None:
            revision = route.tags.get(tag)
            if revision is None:
                raise LookupError(f"no revision tagged {tag}")
            return revision
        targets = [(rev, pct) for rev, pct in route.traffic.get(component, []) if pct > 0]
        live = [(rev, pct) for rev, pct in targets if rev in route.activatable or self.replicas.ready(rev)]
        if not live:
            raise ConnectionError(f"no ready replica for the {component}")
        point = self.random.uniform(0, sum(p for _, p in live))
        for rev, pct in live:
            point -= pct
            if point <= 0:
                return rev
        return live[-1][0]

    # --- ASGI -----------------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            for pool in self._upstreams.values():
                pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP]
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        query: bytes = scope.get("query_string", b"")
        if _UNSAFE_TARGET.search(raw_path) or _UNSAFE_TARGET.search(query):
            await _reply(send, 400, {"error": "the request target must be visible ASCII (percent-encode the rest)"})
            return
        try:
            route, component, tag, upstream = self.resolve(host, raw_path.decode("ascii"))
            component = self.component_for(route, component, upstream)
            revision = self.pick(route, component, tag)
        except LookupError as exc:
            await _reply(send, 404, {"error": str(exc)})
            return
        except ConnectionError as exc:
            await _reply(send, 503, {"error": str(exc)}, [(b"retry-after", b"1")])
            return
        if not route.repository_api and _repository_mutation(upstream):
            await _reply(send, 403, {"error": f"repository load/unload is not exposed; set {REPOSITORY_ANNOTATION}"})
            return
        try:
            body = await read_body(receive, self.max_body, _declared_length(scope["headers"]))
        except PayloadTooLarge as exc:
            await _drain(receive, DRAIN_BYTES)  # read and drop the rest, so closing does not reset the answer away
            await _reply(send, 413, {"error": exc.message}, [(b"connection", b"close")])
            return
        except (ValueError, InvalidInput) as exc:
            await _reply(send, 400, {"error": str(exc)})
            return
        target = upstream + ("?" + query.decode("ascii") if query else "")
        pool = self.pool(revision, route)
        timeout = route.timeouts.get(component, DEFAULT_TIMEOUT_S)
        tried: tuple[Endpoint, ...] = ()
        last_error: Exception | None = None
        pool.meter.begin()
        try:
            async with asyncio.timeout(timeout):
                for _ in range(3):
                    endpoint = await pool.acquire(tried)
                    if endpoint is None:
                        break
                    try:
                        answer = await self._upstream(endpoint.http).request(scope["method"], target, headers, body)
                    except UpstreamError as exc:  # died or refused: try another replica (inference is repeatable)
                        tried, last_error = (*tried, endpoint), exc
                        continue
                    except ValueError as exc:  # a header the gateway will not put on the wire
                        await _reply(send, 400, {"error": str(exc)})
                        return
                    finally:
                        pool.release(endpoint)
                    status, out, content = answer
                    out.append((b"content-length", str(len(content)).encode()))
                    await send({"type": "http.response.start", "status": status, "headers": out})
                    await send({"type": "http.response.body", "body": content})
                    return
        except TimeoutError:
            what = "did not answer" if tried or self.replicas.ready(revision) else "had no ready replica"
            await _reply(send, 504, {"error": f"the {component} ({revision}) {what} within its {timeout:g}s timeout"})
            return
        except QueueFull as exc:
            await _reply(send, 503, {"error": f"too many requests waiting: {exc}"}, [(b"retry-after", b"1")])
            return
        except Gone as exc:
            await _reply(send, 503, {"error": str(exc)}, [(b"retry-after", b"1")])
            return
        finally:
            pool.meter.end()
        await _reply(send, 502, {"error": f"no replica of {revision} answered: {last_error}"})

    def _upstream(self, url: str) -> Upstream:
        pool = self._upstreams.get(url)
        if pool is None:
            pool = self._upstreams[url] = Upstream(url)
        return pool


async def _drain(receive: Any, cap: int) -> None:
    """Read and discard what the client is still sending (bounded): a socket closed with unread data is reset, and
    the reset can destroy the 413 before the client reads it."""
    dropped = 0
    while dropped < cap:
        try:  # the body may already be complete: then the next message only comes at disconnect
            message = await asyncio.wait_for(receive(), DRAIN_PAUSE_S)
        except TimeoutError:
            return
        if message["type"] == "http.disconnect" or not message.get("more_body"):
            return
        dropped += len(message.get("body", b""))


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for key, value in headers:
        if key == b"content-length":
            if not value.isdigit():
                raise ValueError("Content-Length must be a number")
            return int(value)
    return None


def _repository_mutation(path: str) -> bool:
    """A V2 repository call other than the read-only index (decoded as the replica will decode it)."""
    if "%" in path:
        from urllib.parse import unquote

        path = unquote(path)
    path = path.split("?", 1)[0]
    return path.startswith("/v2/repository/") and path.rstrip("/") != "/v2/repository/index"


async def _reply(send: Any, status: int, doc: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps(doc)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
