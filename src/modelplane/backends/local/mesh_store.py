"""Local backend: the mesh registry in the platform's own SQLite store (the default on one machine) — each
multi-model revision's copies, load failures and replica capacity survive a control-plane restart. Reads are the
in-memory registry's; writes are logged (mesh_log.py) and saved in one transaction per revision when the controller
asks (`save`, on a worker thread: the event loop never waits for the disk)."""

from __future__ import annotations

import asyncio

from modelplane.backends.local.mesh import MeshRegistry
from modelplane.backends.local.mesh_log import LoggedRegistry
from modelplane.backends.local.store import Store


class StoreRegistry(LoggedRegistry):
    def __init__(self, store: Store, revision: str) -> None:
        super().__init__()
        self.store = store
        self.revision = revision
        for key, value in store.mesh_rows(revision):  # what it knew before a restart
            self.apply(key, value)

    async def save(self) -> None:
        if not self._pending:
            return
        ops = list(self._pending)
        self._pending.clear()
        await asyncio.to_thread(self.store.mesh_write, self.revision, ops)


class StoreRegistries:
    """One StoreRegistry per multi-model revision (the gateway's `mesh_registry`), saved and forgotten together."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._made: dict[str, StoreRegistry] = {}

    def __call__(self, revision: str) -> MeshRegistry:
        registry = self._made.get(revision)
        if registry is None:
            registry = self._made[revision] = StoreRegistry(self.store, revision)
        return registry

    async def save(self) -> None:
        for registry in list(self._made.values()):
            await registry.save()

    def forget(self, revision: str) -> None:
        """The revision is gone: its placement too (one small delete, as the controller's status writes)."""
        self._made.pop(revision, None)
        self.store.mesh_forget(revision)
