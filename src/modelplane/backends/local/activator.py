"""Local backend: the data path in front of one revision's replicas — the queue-proxy role (a per-replica breaker
sized to containerConcurrency, a bounded FIFO queue, a concurrency meter for the autoscaler) and the activator
role (hold requests while the revision has no ready replica, trigger scale-from-zero, probe the starting replicas
itself and release the held requests to the first one whose model answers)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, Protocol

from modelplane.backends.local.upstream import Upstream, UpstreamError

if TYPE_CHECKING:
    from modelplane.backends.local.mesh import Placement
from modelplane.protocol.errors import ModelplaneError, Status

log = logging.getLogger("modelplane.activator")
PROBE_EVERY_S = 0.005  # while requests are held: how often the starting replicas are probed
RECHECK_S = 0.05  # a held request re-reads the replica set this often (scale-ups, readiness seen by the controller)


class Endpoint(NamedTuple):
    http: str  # base URL
    grpc: str  # host:port


class ReplicaView(Protocol):
    """What the data path needs to know of the replicas (the local backend's Revisions; a dict in unit tests)."""

    def ready(self, revision: str) -> list[Endpoint]: ...
    def starting(self, revision: str) -> list[tuple[Endpoint, str]]: ...  # (endpoint, readiness path)
    def mark_ready(self, revision: str, endpoint: Endpoint) -> None: ...


class QueueFull(ModelplaneError):
    """More requests are waiting for this revision than its queue holds."""

    status = Status(503, "UNAVAILABLE")
    headers = {"retry-after": "1"}


class Gone(ModelplaneError):
    """The revision was removed while the request waited for it."""

    status = Status(503, "UNAVAILABLE")
    headers = {"retry-after": "1"}


class Meter:
    """Time-weighted in-flight requests (held ones included) and arrivals since the last collect; written by the
    data path and collected by the controller, both on the event loop."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.inflight = 0
        self.requests = 0
        self._area = 0.0
        self._since = self._last = clock()

    def _advance(self) -> None:
        now = self.clock()
        self._area += self.inflight * (now - self._last)
        self._last = now

    def begin(self) -> None:
        self._advance()
        self.inflight += 1
        self.requests += 1

    def end(self) -> None:
        self._advance()
        self.inflight -= 1

    def collect(self) -> tuple[float, float]:
        """(mean concurrency, requests per second) since the previous collect."""
        self._advance()
        span = max(self._last - self._since, 1e-9)
        out = (self._area / span, self.requests / span)
        self._area, self.requests, self._since = 0.0, 0, self._last
        return out


BOUNDED_LOAD = 1.25  # an affine request may go to a replica while its load is under 1.25x the mean (Mirrokni et al.)


def _rendezvous(affinity: int, url: str) -> int:
    return int.from_bytes(hashlib.blake2b(b"%d %s" % (affinity, url.encode()), digest_size=8).digest(), "little")


class RevisionPool:
    """One revision's slice of the data path."""

    def __init__(
        self,
        revision: str,
        replicas: ReplicaView,
        activate: Callable[[str, int], None],
        concurrency: int = 0,
        queue_depth: int = 10_000,
    ) -> None:
        self.revision = revision
        self.replicas = replicas
        self.activate = activate  # (revision, requests held): must not block the event loop
        self.concurrency = concurrency  # containerConcurrency; 0 = no per-replica limit
        self.queue_depth = queue_depth
        self.meter = Meter()
        self.inflight: dict[Endpoint, int] = {}
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.held = 0  # requests waiting because no replica is ready
        self._rr = itertools.count()
        self._prober: asyncio.Task[None] | None = None
        self.closed = False  # set when the revision is removed: waiting requests give up
        self.placement: Placement | None = None  # many models per replica: route each to a replica holding it

    def _free(self, ready: list[Endpoint], affinity: int | None = None, model: str | None = None) -> Endpoint | None:
        if not ready:
            return None
        if model is not None and self.placement is not None:
            chosen = self.placement.choose(model, ready, self.inflight)
            if chosen is None or (self.concurrency and self.inflight.get(chosen, 0) >= self.concurrency):
                return None
            return chosen
        if affinity is not None and len(ready) > 1:
            return self._affine(ready, affinity)
        if not self.concurrency:
            return ready[next(self._rr) % len(ready)]
        best = min(ready, key=lambda e: self.inflight.get(e, 0))
        return best if self.inflight.get(best, 0) < self.concurrency else None

    def _affine(self, ready: list[Endpoint], affinity: int) -> Endpoint | None:
        """Consistent hashing with bounded loads: replicas in rendezvous-hash order for `affinity`, the first whose
        in-flight count is under BOUNDED_LOAD x the mean (one hot prefix spills to the next replica in its order
        instead of overloading the first) and under containerConcurrency."""
        total = sum(self.inflight.get(e, 0) for e in ready) + 1
        cap = max(1, math.ceil(BOUNDED_LOAD * total / len(ready)))
        for endpoint in sorted(ready, key=lambda e: _rendezvous(affinity, e.http), reverse=True):
            load = self.inflight.get(endpoint, 0)
            if load < cap and (not self.concurrency or load < self.concurrency):
                return endpoint
        return None

    async def acquire(
        self, exclude: tuple[Endpoint, ...] = (), affinity: int | None = None, model: str | None = None
    ) -> Endpoint | None:
        """A replica with a free slot (its slot is now taken), waiting if there is none; a new arrival queues behind
        the requests already waiting. None when every ready replica is in `exclude` (they failed this request).
        QueueFull when the queue is at its bound. Requests with the same `affinity` prefer the same replica."""
        arriving = True
        while True:
            all_ready = self.replicas.ready(self.revision)
            ready = [e for e in all_ready if e not in exclude]
            if all_ready and not ready:
                return None
            endpoint = None if arriving and self.waiters else self._free(ready, affinity, model)
            if endpoint is not None:
                self.inflight[endpoint] = self.inflight.get(endpoint, 0) + 1
                return endpoint
            if self.closed:
                raise Gone(f"{self.revision} was removed while the request waited")
            if arriving and len(self.waiters) >= self.queue_depth:
                raise QueueFull(f"too many requests waiting: {len(self.waiters)} for {self.revision}")
            arriving = False
            cold = not all_ready
            if cold:
                self.held += 1
                self.activate(self.revision, self.held)
                if self._prober is None or self._prober.done():
                    self._prober = asyncio.create_task(self._probe_starting())
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter, RECHECK_S)
            finally:
                if cold:
                    self.held -= 1
                with contextlib.suppress(ValueError):
                    self.waiters.remove(waiter)

    def release(self, endpoint: Endpoint) -> None:
        left = self.inflight.get(endpoint, 1) - 1
        if left:
            self.inflight[endpoint] = left
        else:
            self.inflight.pop(endpoint, None)
        self._wake(1)

    def _wake(self, n: int | None = None) -> None:
        for waiter in self.waiters:
            if n is not None and n <= 0:
                return
            if not waiter.done():
                waiter.set_result(None)
                n = None if n is None else n - 1

    async def _probe_starting(self) -> None:
        """While requests are held: probe the replicas that are starting, and release the held requests the moment
        one answers ready (rather than on the controller's next tick)."""
        pools: dict[str, Upstream] = {}
        try:
            while self.held and not self.replicas.ready(self.revision):
                for endpoint, path in self.replicas.starting(self.revision):
                    pool = pools.setdefault(endpoint.http, Upstream(endpoint.http, max_idle=1))
                    try:
                        status, _, _ = await asyncio.wait_for(pool.request("GET", path, [], b""), 0.5)
                    except (UpstreamError, TimeoutError):
                        continue
                    if status == 200:
                        self.replicas.mark_ready(self.revision, endpoint)
                        log.info(
                            "%s: replica %s ready, releasing %d held requests", self.revision, endpoint.http, self.held
                        )
                        break
                else:
                    await asyncio.sleep(PROBE_EVERY_S)
            self._wake()
        finally:
            for pool in pools.values():
                pool.close()
