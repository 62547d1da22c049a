"""Local backend: what the placement of multi-model revisions knows of their replicas — once a second each ready
replica's model-cache gauges (/metrics), every few seconds the models it holds (the repository index, ready ones
only); replicas no longer ready hand their models to the others; request rates turned into wanted copies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

import orjson

from modelplane.backends.local.activator import Endpoint, RevisionPool
from modelplane.backends.local.mesh import Placement, ReplicaStats
from modelplane.backends.local.upstream import Upstream, UpstreamError

PERIOD_S = 1.0
INDEX_EVERY_S = 5.0
TIMEOUT_S = 2.0
GAUGES = {
    b"modelplane_model_cache_capacity_bytes": "capacity",
    b"modelplane_model_cache_loaded_bytes": "used",
    b"modelplane_model_cache_lru_age_seconds": "lru_age_s",
    b"modelplane_model_cache_loaded_models": "models",
}


def parse_stats(exposition: bytes) -> ReplicaStats:
    stats = ReplicaStats()
    for line in exposition.splitlines():
        name, _, value = line.partition(b" ")
        field = GAUGES.get(name)
        if field is not None:
            try:
                number = float(value)
            except ValueError:
                continue
            setattr(stats, field, number if field == "lru_age_s" else int(number))
    return stats


class MeshWatch:
    def __init__(self, upstream: Callable[[str], Upstream], clock: Callable[[], float] = time.monotonic) -> None:
        self.upstream = upstream
        self.clock = clock
        self._read_at = -PERIOD_S
        self._index_at = -INDEX_EVERY_S
        self._seen: dict[str, set[Endpoint]] = {}

    async def read(self, pools: Mapping[str, RevisionPool]) -> None:
        """Refresh every multi-model pool's placement (at most once a PERIOD_S)."""
        now = self.clock()
        if now - self._read_at < PERIOD_S:
            return
        span, self._read_at = now - self._read_at, now
        index = now - self._index_at >= INDEX_EVERY_S
        if index:
            self._index_at = now
        meshes = [(key, pool) for key, pool in pools.items() if pool.placement is not None]
        await asyncio.gather(*(self._pool(key, pool, span, index) for key, pool in meshes))
        for key in set(self._seen) - {key for key, _ in meshes}:
            del self._seen[key]

    async def _pool(self, key: str, pool: RevisionPool, span: float, index: bool) -> None:
        placement = pool.placement
        assert placement is not None
        ready = set(pool.replicas.ready(key))
        for gone in self._seen.get(key, set()) - ready:
            placement.gone(gone.http)
        self._seen[key] = ready
        await asyncio.gather(*(self._replica(placement, e, index) for e in ready))
        placement.tick(span)

    async def _replica(self, placement: Placement, endpoint: Endpoint, index: bool) -> None:
        metrics = await self._ask(endpoint, "GET", "/metrics", b"")
        if metrics is None:
            return
        loaded = None
        if index:
            body = await self._ask(endpoint, "POST", "/v2/repository/index", b'{"ready": true}')
            try:
                loaded = [m["name"] for m in orjson.loads(body)] if body is not None else None
            except (orjson.JSONDecodeError, TypeError, KeyError):
                loaded = None
        placement.observe(endpoint.http, parse_stats(metrics), loaded)

    async def _ask(self, endpoint: Endpoint, method: str, path: str, body: bytes) -> bytes | None:
        headers = [(b"content-type", b"application/json")] if body else []
        try:
            status, _, answer = await asyncio.wait_for(
                self.upstream(endpoint.http).request(method, path, headers, body), TIMEOUT_S
            )
        except (UpstreamError, TimeoutError, OSError, ValueError):
            return None
        return answer if status == 200 and isinstance(answer, bytes) else None
