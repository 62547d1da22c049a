"""Local backend: a mesh registry that keeps a log of its writes — the in-memory registry every read is answered
from, plus each change as a key and a value (or a deletion) for a backing store to persist in the background, and
the way back from those keys. The SQLite store (mesh_store.py) and etcd (mesh_etcd.py) back it."""

from __future__ import annotations

import json
import logging
from collections import deque

from modelplane.backends.local.mesh import Failure, MemoryRegistry, ReplicaStats

log = logging.getLogger("modelplane.mesh")
SEP = "\x00"  # between a model and a replica URL in a key (neither may hold it)
Op = tuple[str, str, str | None]  # ("put" | "delete", key, value)


class LoggedRegistry(MemoryRegistry):
    def __init__(self) -> None:
        super().__init__()
        self._pending: deque[Op] = deque()

    # --- writes: the registry now, the log for the backing store ---------------------------------------------
    def add_copy(self, model: str, replica: str, at: float) -> None:
        super().add_copy(model, replica, at)
        self._put(f"copies/{model}{SEP}{replica}", json.dumps(at))

    def drop_copy(self, model: str, replica: str) -> None:
        if replica in self.copies(model):
            super().drop_copy(model, replica)
            self._delete(f"copies/{model}{SEP}{replica}")

    def fail(self, model: str, replica: str, failure: Failure) -> None:
        super().fail(model, replica, failure)
        self._put(f"failures/{model}{SEP}{replica}", json.dumps([failure.message, failure.until]))

    def publish(self, replica: str, stats: ReplicaStats) -> None:
        if stats != self.stats(replica):
            super().publish(replica, stats)
            value = [stats.capacity, stats.used, stats.lru_age_s, stats.models]
            self._put(f"replicas/{replica}", json.dumps(value))

    def _put(self, key: str, value: str) -> None:
        self._pending.append(("put", key, value))
        self._written()

    def _delete(self, key: str) -> None:
        self._pending.append(("delete", key, None))
        self._written()

    def _written(self) -> None:
        """A change was logged (a backing store that writes as changes come wakes its writer here)."""

    # --- a stored key back into the registry -----------------------------------------------------------------
    def apply(self, key: str, value: str | None) -> None:
        """Apply one persisted key (relative to the store's prefix) without logging it again."""
        kind, _, rest = key.partition("/")
        model, _, replica = rest.partition(SEP)
        try:
            if kind == "copies":
                if value is None:
                    MemoryRegistry.drop_copy(self, model, replica)
                else:
                    MemoryRegistry.add_copy(self, model, replica, float(json.loads(value)))
            elif kind == "failures" and value is not None:
                message, until = json.loads(value)
                MemoryRegistry.fail(self, model, replica, Failure(str(message), float(until)))
            elif kind == "replicas" and value is not None:
                capacity, used, age, models = json.loads(value)
                MemoryRegistry.publish(self, rest, ReplicaStats(int(capacity), int(used), float(age), int(models)))
        except (ValueError, TypeError) as exc:  # a garbled value is skipped, not fatal
            log.warning("skipping mesh key %r: %s", key, exc)
