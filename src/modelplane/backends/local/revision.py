"""Local backend: one `RevisionState` per running revision — the single owner of what the backend holds for it
(where it came from, its model pull, how it runs, its autoscaler, its replica processes) — and `Revisions`, the
table of them that the gateway reads as its ReplicaView. Everything here is touched only on the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from modelplane.backends.local.activator import Endpoint
from modelplane.control.api import InferenceService
from modelplane.control.revision import Revision

if TYPE_CHECKING:
    from modelplane.backends.local.autoscaler import Scaler
    from modelplane.backends.local.replicas import Replica, ReplicaSpec

READY_PATH = "/v2/health/ready"


@dataclass
class Pull:
    """The revision's model pull: running in a worker thread, done (model_dir), or failed (error, retried later)."""

    task: asyncio.Future[Path] | None = None
    model_dir: Path | None = None
    error: str = ""
    failures: int = 0
    retry_at: float = 0.0  # monotonic time before which a failed pull is not tried again


@dataclass(eq=False)
class RevisionState:
    key: str  # Revision.key: namespace, revision name and template hash
    owner: tuple[str, str, str]  # namespace, InferenceService, component
    isvc: InferenceService
    revision: Revision
    pull: Pull = field(default_factory=Pull)
    spec: ReplicaSpec | None = None  # how a replica runs; kept while the revision is at zero
    scaler: Scaler | None = None
    replicas: list[Replica] = field(default_factory=list)
    planned: int = 0  # replicas it should run, decided this pass (or by an activation since)
    error: str = ""  # what stops it from running other than its pull (invalid settings, a failed activation)
    poked: float = 0.0  # monotonic time of the last activation (debounce)

    @property
    def failure(self) -> str:
        """Why it is not serving, for the status: pull, settings, or the last replica failure."""
        return self.pull.error or self.error or next((r.failure for r in self.replicas if r.failure), "")

    def count(self) -> tuple[int, int]:
        """(replicas, ready replicas)."""
        return len(self.replicas), sum(1 for r in self.replicas if r.ready)


class Revisions:
    """The RevisionStates by key. Implements the gateway's ReplicaView (read on the hot path)."""

    def __init__(self) -> None:
        self._states: dict[str, RevisionState] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._states

    def __iter__(self) -> Iterator[RevisionState]:
        return iter(list(self._states.values()))

    def get(self, key: str) -> RevisionState | None:
        return self._states.get(key)

    def add(self, state: RevisionState) -> RevisionState:
        self._states[state.key] = state
        return state

    def remove(self, key: str) -> None:
        self._states.pop(key, None)

    def keys(self) -> set[str]:
        return set(self._states)

    # --- ReplicaView ---------------------------------------------------------------------------------------
    def ready(self, revision: str) -> list[Endpoint]:
        state = self._states.get(revision)
        return [r.endpoint for r in state.replicas if r.ready] if state is not None else []

    def starting(self, revision: str) -> list[tuple[Endpoint, str]]:
        state = self._states.get(revision)
        if state is None:
            return []
        path = state.spec.ready_path if state.spec else READY_PATH
        return [(r.endpoint, path) for r in state.replicas if not r.ready]

    def mark_ready(self, revision: str, endpoint: Endpoint) -> None:
        state = self._states.get(revision)
        for r in state.replicas if state is not None else ():
            if r.endpoint == endpoint and not r.ready:
                r.mark_ready()
