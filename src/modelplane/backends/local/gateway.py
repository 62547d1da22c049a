"""Local backend: the embedded gateway — one port in front of every InferenceService (the ingress + Knative
routing role): host or path routing, component choice, weighted traffic split, round-robin over ready replicas."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelplane.backends.local.upstream import HOP_BY_HOP, Upstream, UpstreamError

Scope = dict[str, Any]
COMPONENTS = ("predictor", "transformer", "explainer")
DEFAULT_TIMEOUT_S = 300.0  # Knative's default request timeout


@dataclass
class Route:
    """Where one InferenceService's traffic goes: per component, (revision, percent) targets; tags by name."""

    traffic: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)  # "latest"/"prev" -> revision (tag routing)
    timeouts: dict[str, float] = field(default_factory=dict)  # component -> seconds (the component's `timeout`)


class Gateway:
    """ASGI app. `replicas(revision)` returns the base URLs of that revision's ready replicas."""

    def __init__(self, replicas: Callable[[str], list[str]], domain: str = "example.com") -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.replicas = replicas
        self.domain = domain
        self._rr: dict[str, itertools.count[int]] = {}
        self._upstreams: dict[str, Upstream] = {}
        self.random = random.Random()

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

    def pick(self, route: Route, component: str, tag: str | None) -> tuple[str, list[str]]:
        """(revision, its ready replica URLs) for this request."""
        if tag is not None:
            revision = route.tags.get(tag)
            if revision is None:
                raise LookupError(f"no revision tagged {tag}")
            return revision, self.replicas(revision)
        targets = [(rev, pct) for rev, pct in route.traffic.get(component, []) if pct > 0]
        live = [(rev, pct, urls) for rev, pct in targets if (urls := self.replicas(rev))]
        if not live:
            raise ConnectionError(f"no ready replica for the {component}")
        point = self.random.uniform(0, sum(p for _, p, _ in live))
        for rev, pct, urls in live:
            point -= pct
            if point <= 0:
                return rev, urls
        return live[-1][0], live[-1][2]

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
        try:
            route, component, tag, upstream = self.resolve(host, scope["path"])
            component = self.component_for(route, component, upstream)
            revision, urls = self.pick(route, component, tag)
        except LookupError as exc:
            await _reply(send, 404, {"error": str(exc)})
            return
        except ConnectionError as exc:
            await _reply(send, 503, {"error": str(exc)}, [(b"retry-after", b"1")])
            return
        body = await _read(receive)
        query = scope.get("query_string", b"")
        target = upstream + ("?" + query.decode("latin-1") if query else "")
        start = next(self._rr.setdefault(revision, itertools.count()))
        last_error: Exception | None = None
        for attempt in range(min(len(urls), 3)):
            url = urls[(start + attempt) % len(urls)]
            pool = self._upstreams.get(url)
            if pool is None:
                pool = self._upstreams[url] = Upstream(url)
            try:
                async with asyncio.timeout(route.timeouts.get(component, DEFAULT_TIMEOUT_S)):
                    status, out, content = await pool.request(scope["method"], target, headers, body)
            except TimeoutError:
                await _reply(send, 504, {"error": f"the {component} did not answer within its timeout"})
                return
            except UpstreamError as exc:  # the replica died or refused: try the next one (inference is repeatable)
                last_error = exc
                continue
            out.append((b"content-length", str(len(content)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": out})
            await send({"type": "http.response.body", "body": content})
            return
        await _reply(send, 502, {"error": f"no replica of {revision} answered: {last_error}"})


async def _read(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


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
