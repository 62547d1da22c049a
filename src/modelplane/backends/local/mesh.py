"""Local backend: model-aware routing across the replicas of a multi-model revision (ModelMesh's placement) — a
request goes to a replica holding its model; with none, the model is placed by ModelMesh's rules and the replica
loads it on that first request; copies grow with a model's request rate, a replica that stops hands its models to
the others, a model that failed to load on one replica is tried on another. Pure: the caller passes the clock."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from modelplane.backends.local.activator import Endpoint

BUSY_SLACK = 4  # a replica with this many more requests in flight than the least loaded one is "much busier"
SCALEUP_RPS = 2000 / 60  # ModelMesh's scale-up threshold: 2000 requests a minute on one copy
FAILURE_S = 15 * 60  # ModelMesh keeps a load failure this long before trying that replica again
PENDING_S = 10.0  # a copy placed this recently survives a replica's index that does not list it yet


@dataclass(slots=True)
class ReplicaStats:
    """What a replica's model cache reports (its /metrics): bytes it may hold and holds, its LRU's oldest age."""

    capacity: int = 0
    used: int = 0
    lru_age_s: float = 0.0
    models: int = 0

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.used)


@dataclass(slots=True)
class Failure:
    message: str
    until: float


class MeshRegistry(Protocol):
    """Where each model's copies are, its load failures, and each replica's capacity — what placement decides from.
    Reads are answered from memory (the request path); one machine keeps it all in the platform (MemoryRegistry),
    several platforms share it through etcd (mesh_etcd.EtcdRegistry)."""

    def copies(self, model: str) -> Mapping[str, float]: ...  # replica URL -> when the copy was placed
    def add_copy(self, model: str, replica: str, at: float) -> None: ...
    def drop_copy(self, model: str, replica: str) -> None: ...
    def models_on(self, replica: str) -> list[str]: ...
    def failures(self, model: str) -> Mapping[str, Failure]: ...
    def fail(self, model: str, replica: str, failure: Failure) -> None: ...
    def stats(self, replica: str) -> ReplicaStats: ...
    def publish(self, replica: str, stats: ReplicaStats) -> None: ...


class MemoryRegistry:
    """MeshRegistry in one process: dictionaries both ways (model -> replicas, replica -> models), O(1) per copy."""

    def __init__(self) -> None:
        self._copies: dict[str, dict[str, float]] = {}
        self._on: dict[str, set[str]] = {}
        self._failures: dict[str, dict[str, Failure]] = {}
        self._replicas: dict[str, ReplicaStats] = {}

    def copies(self, model: str) -> Mapping[str, float]:
        return self._copies.get(model) or {}

    def add_copy(self, model: str, replica: str, at: float) -> None:
        self._copies.setdefault(model, {})[replica] = at
        self._on.setdefault(replica, set()).add(model)

    def drop_copy(self, model: str, replica: str) -> None:
        held = self._copies.get(model)
        if held is not None and held.pop(replica, None) is not None:
            if not held:
                del self._copies[model]
            self._on.get(replica, set()).discard(model)

    def models_on(self, replica: str) -> list[str]:
        return list(self._on.get(replica, ()))

    def failures(self, model: str) -> Mapping[str, Failure]:
        return self._failures.get(model) or {}

    def fail(self, model: str, replica: str, failure: Failure) -> None:
        self._failures.setdefault(model, {})[replica] = failure

    def stats(self, replica: str) -> ReplicaStats:
        return self._replicas.get(replica) or ReplicaStats()

    def publish(self, replica: str, stats: ReplicaStats) -> None:
        self._replicas[replica] = stats


class Placement:
    """Chooses the replica for each request of a multi-model revision. Request rates are this gateway's own."""

    def __init__(self, registry: MeshRegistry | None = None, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry or MemoryRegistry()
        self.clock = clock  # wall clock: placement times are compared across platforms sharing a registry
        self.placed = 0  # copies placed (a model loaded on a replica that did not hold it)
        self._requests: dict[str, int] = {}  # since the last tick
        self._wanted: dict[str, int] = {}  # copies a model's request rate asks for (absent: one)

    def choose(self, model: str, ready: list[Endpoint], inflight: dict[Endpoint, int]) -> Endpoint | None:
        """A holder of `model` with the fewest requests in flight, unless every holder is much busier than the least
        loaded replica or the model's rate wants another copy: then a new copy is placed."""
        if not ready:
            return None
        now = self.clock()
        self._requests[model] = self._requests.get(model, 0) + 1
        copies = self.registry.copies(model)
        failures = self.registry.failures(model)
        least = min(inflight.get(e, 0) for e in ready)
        usable = [e for e in ready if not _failed(failures, e.http, now)]
        holders = [e for e in usable if e.http in copies]
        if holders:
            best = min(holders, key=lambda e: inflight.get(e, 0))
            grow = len(holders) < self.wanted(model) or inflight.get(best, 0) > least + BUSY_SLACK
            if not grow or len(holders) == len(usable):
                return best
        target = self._place([e for e in usable if e.http not in copies], inflight, least)
        if target is None:
            return min(holders or ready, key=lambda e: inflight.get(e, 0))  # it answers with its own failure
        self.registry.add_copy(model, target.http, now)
        self.placed += 1
        return target

    def spare(self, model: str, ready: list[Endpoint], inflight: dict[Endpoint, int]) -> Endpoint | None:
        """Where one more copy of `model` would go (a replica that neither holds it nor failed it; None: there is
        none). Nothing is recorded: the caller loads it there and says `loaded`."""
        now = self.clock()
        copies, failures = self.registry.copies(model), self.registry.failures(model)
        candidates = [e for e in ready if e.http not in copies and not _failed(failures, e.http, now)]
        return self._place(candidates, inflight, min((inflight.get(e, 0) for e in ready), default=0))

    def loaded(self, model: str, replica: str) -> None:
        """`model` was loaded on `replica` (outside the request path): a copy."""
        self.registry.add_copy(model, replica, self.clock())
        self.placed += 1

    def _place(self, candidates: list[Endpoint], inflight: dict[Endpoint, int], least: int) -> Endpoint | None:
        """ModelMesh's order: replicas not much busier than the least loaded; a replica with free room before a full
        one; among full ones the one whose least recently used model is oldest; then fewer models, fewer in flight."""
        calm = [e for e in candidates if inflight.get(e, 0) <= least + BUSY_SLACK] or candidates
        if not calm:
            return None

        def rank(e: Endpoint) -> tuple[int, float, int, int]:
            s = self.registry.stats(e.http)
            roomy = s.capacity == 0 or s.free > 0
            return (0 if roomy else 1, -s.free if roomy else -s.lru_age_s, s.models, inflight.get(e, 0))

        return min(calm, key=rank)

    def wanted(self, model: str) -> int:
        """Copies `model`'s request rate asked for at the last tick."""
        return self._wanted.get(model, 1)

    def failed(self, model: str, replica: str, message: str) -> None:
        """`model` failed to load on `replica`: not placed there again for FAILURE_S."""
        self.registry.drop_copy(model, replica)
        self.registry.fail(model, replica, Failure(message, self.clock() + FAILURE_S))

    def forgive(self, model: str) -> None:
        """`model`'s files changed: its past load failures say nothing about them."""
        for replica in list(self.registry.failures(model)):
            self.registry.fail(model, replica, Failure("", 0.0))

    def failures(self, model: str) -> dict[str, str]:
        now = self.clock()
        return {r: f.message for r, f in self.registry.failures(model).items() if f.until > now}

    def observe(self, replica: str, stats: ReplicaStats, loaded: Iterable[str] | None = None) -> None:
        """A replica's report: its cache's numbers and (when read) the models it has loaded; copies it evicted are
        forgotten, except those placed too recently to be loaded yet. O(models on that replica)."""
        self.registry.publish(replica, stats)
        if loaded is None:
            return
        now = self.clock()
        held = set(loaded)
        for name in self.registry.models_on(replica):
            if name not in held and now - self.registry.copies(name).get(replica, now) > PENDING_S:
                self.registry.drop_copy(name, replica)
        for name in held:
            if replica not in self.registry.copies(name):
                self.registry.add_copy(name, replica, now)

    def gone(self, replica: str) -> None:
        """A replica stopped: its copies are forgotten, so their next requests place them on the others."""
        for name in self.registry.models_on(replica):
            self.registry.drop_copy(name, replica)

    def tick(self, seconds: float) -> None:
        """Every period: each model's request rate sets how many copies it wants (one per SCALEUP_RPS)."""
        wanted = {}
        for model, count in self._requests.items():
            copies = math.ceil(count / max(seconds, 1e-9) / SCALEUP_RPS)
            if copies > 1:
                wanted[model] = copies
        self._wanted, self._requests = wanted, {}


def _failed(failures: Mapping[str, Failure], replica: str, now: float) -> bool:
    failure = failures.get(replica)
    return failure is not None and failure.until > now
