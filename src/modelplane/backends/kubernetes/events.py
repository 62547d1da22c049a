"""Kubernetes backend: which watch events matter to a reconcile, and the work queue that runs one reconcile per
InferenceService at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelplane.backends.kubernetes.cache import Key

ISVC = ("serving.kserve.io/v1beta1", "InferenceService")
RUNTIMES = {("serving.kserve.io/v1alpha1", "ServingRuntime"), ("serving.kserve.io/v1alpha1", "ClusterServingRuntime")}
TRAINED = ("serving.kserve.io/v1alpha1", "TrainedModel")


STATUS_READ = {"Deployment", "Service"}  # kinds whose status `observe` reads (apps Deployments, Knative Services)


def matters(kind: tuple[str, str], old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a changed object can change a reconcile's outcome: anything but the status of an InferenceService
    (written by the operator) or of a kind the operator does not read; the echo of the operator's own write (the
    cache already holds what the write returned) compares equal and matters not."""
    if kind == ISVC:
        keep = ("labels", "annotations", "generation", "deletionTimestamp")
        return any(old["metadata"].get(k) != new["metadata"].get(k) for k in keep) or old.get("spec") != new.get("spec")
    if kind in RUNTIMES:
        return old.get("spec") != new.get("spec") or old["metadata"].get("labels") != new["metadata"].get("labels")
    if kind[1] == "ControllerRevision":
        return False  # immutable, written by the operator
    if kind == TRAINED:  # its status is the operator's to write
        return old.get("spec") != new.get("spec") or old["metadata"].get("deletionTimestamp") != new["metadata"].get(
            "deletionTimestamp"
        )
    parts = ["metadata", "spec", "data"] + (["status"] if kind[1] in STATUS_READ and kind[0] != "v1" else [])
    return any(_stable(old, p) != _stable(new, p) for p in parts)


def _stable(body: dict[str, Any], part: str) -> Any:
    """`part` without what changes on every write (resourceVersion, managedFields)."""
    value = body.get(part)
    if part == "metadata" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in ("resourceVersion", "managedFields", "generation")}
    return value


@dataclass
class WorkQueue:
    """Keys to reconcile: a key queued twice is reconciled once; a key queued while it is being reconciled is
    reconciled again after (never twice at the same time)."""

    _ready: asyncio.Queue[Key] = field(default_factory=asyncio.Queue)
    _queued: set[Key] = field(default_factory=set)
    _active: set[Key] = field(default_factory=set)
    _again: set[Key] = field(default_factory=set)
    _since: dict[Key, float] = field(default_factory=dict)  # when a queued key was first queued
    clock: Callable[[], float] = time.monotonic

    def add(self, key: Key) -> None:
        if key in self._active:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._since[key] = self.clock()
            self._ready.put_nowait(key)

    async def get(self) -> tuple[Key, float]:
        """The next key and how long it waited in the queue (seconds)."""
        key = await self._ready.get()
        self._queued.discard(key)
        self._active.add(key)
        return key, self.clock() - self._since.pop(key)

    def done(self, key: Key) -> None:
        self._active.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)

    def __len__(self) -> int:
        return len(self._queued) + len(self._active)
