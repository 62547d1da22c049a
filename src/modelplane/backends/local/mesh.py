"""Local backend: model-aware routing across the replicas of a multi-model revision (ModelMesh's placement) — a
request goes to a replica holding its model; with none, the model is placed by ModelMesh's rules and the replica
loads it on that first request; copies grow with a model's request rate, a replica that stops hands its models to
the others, a model that failed to load on one replica is tried on another. Pure: the caller passes the clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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


@dataclass(slots=True)
class ModelRecord:
    """One model's place in the mesh: where its copies are (replica URL → when placed), failures, request rate."""

    copies: dict[str, float] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)
    requests: int = 0  # since the last tick
    wanted: int = 1  # copies its request rate asks for


class MeshRegistry(Protocol):
    """Models, their copies and the replicas' capacity — the state placement decides from. One machine keeps it in
    the platform process (MemoryRegistry); a shared store (etcd) serves several platforms."""

    def model(self, name: str) -> ModelRecord: ...
    def find(self, name: str) -> ModelRecord | None: ...
    def models(self) -> Iterable[tuple[str, ModelRecord]]: ...
    def stats(self, replica: str) -> ReplicaStats: ...
    def publish(self, replica: str, stats: ReplicaStats) -> None: ...


class MemoryRegistry:
    """MeshRegistry in one process: dictionaries, O(1) per model."""

    def __init__(self) -> None:
        self._models: dict[str, ModelRecord] = {}
        self._replicas: dict[str, ReplicaStats] = {}

    def model(self, name: str) -> ModelRecord:
        record = self._models.get(name)
        if record is None:
            record = self._models[name] = ModelRecord()
        return record

    def find(self, name: str) -> ModelRecord | None:
        return self._models.get(name)

    def models(self) -> Iterable[tuple[str, ModelRecord]]:
        return list(self._models.items())

    def stats(self, replica: str) -> ReplicaStats:
        return self._replicas.get(replica) or ReplicaStats()

    def publish(self, replica: str, stats: ReplicaStats) -> None:
        self._replicas[replica] = stats


class Placement:
    """Chooses the replica for each request of a multi-model revision."""

    def __init__(self, registry: MeshRegistry | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry or MemoryRegistry()
        self.clock = clock
        self.placed = 0  # copies placed (a model loaded on a replica that did not hold it)

    def choose(self, model: str, ready: list[Endpoint], inflight: dict[Endpoint, int]) -> Endpoint | None:
        """A holder of `model` with the fewest requests in flight, unless every holder is much busier than the least
        loaded replica or the model's rate wants another copy: then a new copy is placed."""
        if not ready:
            return None
        now = self.clock()
        record = self.registry.model(model)
        record.requests += 1
        least = min(inflight.get(e, 0) for e in ready)
        usable = [e for e in ready if not _failed(record, e.http, now)]
        holders = [e for e in usable if e.http in record.copies]
        if holders:
            best = min(holders, key=lambda e: inflight.get(e, 0))
            grow = len(holders) < record.wanted or inflight.get(best, 0) > least + BUSY_SLACK
            if not grow or len(holders) == len(usable):
                return best
        target = self._place([e for e in usable if e.http not in record.copies], inflight, least)
        if target is None:
            return min(holders or ready, key=lambda e: inflight.get(e, 0))  # it answers with its own failure
        record.copies[target.http] = now
        self.placed += 1
        return target

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

    def failed(self, model: str, replica: str, message: str) -> None:
        """`model` failed to load on `replica`: not placed there again for FAILURE_S."""
        record = self.registry.model(model)
        record.copies.pop(replica, None)
        record.failures[replica] = Failure(message, self.clock() + FAILURE_S)

    def failures(self, model: str) -> dict[str, str]:
        record = self.registry.find(model)
        now = self.clock()
        return {r: f.message for r, f in record.failures.items() if f.until > now} if record else {}

    def observe(self, replica: str, stats: ReplicaStats, loaded: Iterable[str] | None = None) -> None:
        """A replica's report: its cache's numbers and (when read) the models it has loaded; copies it evicted are
        forgotten, except those placed too recently to be loaded yet."""
        self.registry.publish(replica, stats)
        if loaded is None:
            return
        now = self.clock()
        held = set(loaded)
        for name in held:
            self.registry.model(name).copies.setdefault(replica, now)
        for name, record in self.registry.models():
            placed = record.copies.get(replica)
            if placed is not None and name not in held and now - placed > PENDING_S:
                del record.copies[replica]

    def gone(self, replica: str) -> None:
        """A replica stopped: its copies are forgotten, so their next requests place them on the others."""
        for _, record in self.registry.models():
            record.copies.pop(replica, None)

    def tick(self, seconds: float) -> None:
        """Every period: each model's request rate sets how many copies it wants (one per SCALEUP_RPS)."""
        for _, record in self.registry.models():
            rate = record.requests / max(seconds, 1e-9)
            record.wanted = max(1, int(rate // SCALEUP_RPS) + (1 if rate % SCALEUP_RPS else 0))
            record.requests = 0


def _failed(record: ModelRecord, replica: str, now: float) -> bool:
    failure = record.failures.get(replica)
    return failure is not None and failure.until > now
