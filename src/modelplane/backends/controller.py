"""Backends: the controller loop every backend shares — store → pure reconciler → a Backend (seam.py) → status.
Runs on the event loop and never blocks: what is slow is the backend's to run in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from modelplane.backends.meshmode import MeshMode
from modelplane.backends.seam import (
    MODEL_ROUTING_ANNOTATION,
    PREFIX_ROUTING_ANNOTATION,
    REPOSITORY_ANNOTATION,
    Backend,
    Objects,
    Reconciled,
    Traffic,
)
from modelplane.control.api import InferenceService, ServingRuntime
from modelplane.control.modelmesh import annotated_modelmesh, is_modelmesh
from modelplane.control.reconciler import reconcile, template_hash, templates
from modelplane.control.revision import Revision, now
from modelplane.control.runtimes import RuntimeResolutionError, with_builtins
from modelplane.control.trainedmodel import is_mms

log = logging.getLogger("modelplane.controller")


class Controller:
    """Each pass: every InferenceService in the store is reconciled on its own (one that fails is reported on
    itself, the others carry on); revisions no InferenceService wants any more are retired."""

    def __init__(self, store: Objects, backend: Backend, clock: Callable[[], str] = now) -> None:
        self.store = store
        self.backend = backend
        self.clock = clock
        self._routed: set[tuple[str, str]] = set()
        self._broken: dict[tuple[str, str], str] = {}  # isvcs that failed to reconcile -> why (logged once)
        self._stop = asyncio.Event()
        host = backend.models
        self.mesh = MeshMode(store, backend, host, self._reconcile, clock) if host is not None else None

    async def run(self, interval_s: float = 0.25) -> None:
        while not self._stop.is_set():
            try:
                await self.step()
            except Exception:  # keep the control loop alive; the next pass retries
                log.exception("reconcile failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval_s)

    def stop(self) -> None:
        self._stop.set()

    async def step(self) -> None:
        await self.backend.sync()  # everything below runs without yielding to the data path, until commit
        namespaced, cluster = self._runtimes()
        live: set[str] = set()
        present: set[tuple[str, str]] = set()
        meshed: list[InferenceService] = []
        for doc in self.store.list("InferenceService"):
            isvc = self._meshed(doc)
            if isvc is not None:
                meshed.append(isvc)
                continue
            key, owned = self._one(doc, namespaced, cluster)
            present.add(key)
            live.update(owned)
        if self.mesh is not None:
            owned, routes = self.mesh.step(meshed, namespaced, cluster)
            live.update(owned)
            present.update(routes)
            self._routed.update(routes)
        for key in [k for k in self._broken if k not in present]:
            del self._broken[key]
        for key in self._routed - present:  # stop routing before stopping processes
            self.backend.route(*key, None)
        self._routed &= present
        self.backend.retire(live)
        await self.backend.commit()

    async def reconcile(self, namespace: str, name: str) -> None:
        """One InferenceService, for backends whose store tells them what changed (the Kubernetes operator)."""
        await self.backend.sync()
        doc = next(
            (
                d
                for d in self.store.list("InferenceService", namespace)
                if (d.get("metadata") or {}).get("name") == name
            ),
            None,
        )
        meshed = self._meshed(doc) if doc is not None else None
        mesh = self.mesh is not None and (meshed is not None or self.mesh.concerns(namespace, name))
        if mesh:
            self._mesh_namespace(namespace)  # its InferenceServices are decided together, per runtime
        if doc is not None and meshed is None:
            self._one(doc, *self._runtimes())
        elif doc is None and not mesh:  # gone: told to the backend even when this process never routed it
            self._broken.pop((namespace, name), None)
            self.backend.route(namespace, name, None)
            self._routed.discard((namespace, name))
        await self.backend.commit()

    def _mesh_namespace(self, namespace: str) -> None:
        """The mesh's pass over one namespace's ModelMesh InferenceServices; one that left the mesh (deleted, or
        another mode now) loses its route."""
        assert self.mesh is not None
        docs = self.store.list("InferenceService", namespace)
        meshed = [isvc for d in docs if (isvc := self._meshed(d)) is not None]
        _, routes = self.mesh.step(meshed, *self._runtimes(), namespace=namespace)
        names = {(d.get("metadata") or {}).get("name") for d in docs}
        # deleted members, and runtimes' shared deployments none uses any more (they have no document of their
        # own); one that left the mesh another way is reconciled on its own
        for key in [k for k in self._routed if k[0] == namespace and k[1] not in names and k not in routes]:
            self.backend.route(*key, None)
            self._routed.discard(key)
        self._routed.update(routes)

    def _meshed(self, doc: dict[str, Any]) -> InferenceService | None:
        """The document as a ModelMesh InferenceService, when the backend hosts those (else None: reconciled on its
        own, where a malformed one is reported)."""
        if self.mesh is None or not annotated_modelmesh(doc.get("metadata") or {}):  # most documents: no second parse
            return None
        try:
            isvc = InferenceService.model_validate(doc)
        except ValueError:
            return None
        return isvc if is_modelmesh(isvc) else None

    def _runtimes(self) -> tuple[list[ServingRuntime], list[ServingRuntime]]:
        namespaced = [ServingRuntime.model_validate(d) for d in self.store.list("ServingRuntime")]
        cluster = [ServingRuntime.model_validate(d) for d in self.store.list("ClusterServingRuntime")]
        return namespaced, with_builtins(cluster)

    def _one(
        self, doc: dict[str, Any], namespaced: list[ServingRuntime], cluster: list[ServingRuntime]
    ) -> tuple[tuple[str, str], set[str]]:
        """Reconcile one InferenceService document; a failure is reported on it and the others carry on. Returns
        its key and the revisions it keeps."""
        meta = doc.get("metadata") or {}
        key = (str(meta.get("namespace", "default")), str(meta.get("name", "")))
        try:
            isvc = InferenceService.model_validate(doc)
            owned = self._reconcile(isvc, namespaced, cluster).revisions
            self._broken.pop(key, None)
        except Exception as exc:  # one broken object is reported on itself; the others carry on
            if self._broken.get(key) != str(exc):  # once per new reason, not every pass
                self._broken[key] = str(exc)
                log.exception("reconciling %s/%s failed", *key)
            owned = self.backend.owned(*key)
            self.store.set_status("InferenceService", *key, failed_status(doc, exc, self.clock()))
        return key, owned

    def _revisions(self, isvc: InferenceService, wanted: dict[str, dict[str, Any]]) -> dict[str, list[Revision]]:
        """Each component's revisions, a new immutable one appended when its template changed."""
        meta = isvc.metadata
        revisions: dict[str, list[Revision]] = {}
        for component, template in wanted.items():
            existing = self.store.revisions(meta.namespace, meta.name, component)
            digest = template_hash(template)
            if not existing or existing[-1].template_hash != digest:
                self.store.add_revision(meta.namespace, meta.name, component, digest, template)
                existing = self.store.revisions(meta.namespace, meta.name, component)
            revisions[component] = existing
        return revisions

    def _reconcile(
        self,
        isvc: InferenceService,
        namespaced: list[ServingRuntime],
        cluster: list[ServingRuntime],
        aliases: dict[str, str] | None = None,
        publish: bool = True,
    ) -> Reconciled:
        """Reconcile one InferenceService; `publish` False for a derived one (a ModelMesh runtime's deployment),
        which has no stored object to write its status to; `aliases`: the vmodels its route serves."""
        meta = isvc.metadata
        error: RuntimeResolutionError | None = None
        try:
            wanted = templates(isvc, namespaced, cluster)
        except RuntimeResolutionError as exc:
            wanted, error = {}, exc
        revisions = self._revisions(isvc, wanted)
        observed = {rev.name: self.backend.observe(isvc, c, rev) for c, revs in revisions.items() for rev in revs}
        desired = reconcile(
            isvc,
            revisions,
            observed,
            now=self.clock(),
            gateway_url=self.backend.gateway_url,
            domain=self.backend.domain,
            resolution_error=error,
        )
        keys = {rev.name: rev.key for revs in revisions.values() for rev in revs}
        for name, key in keys.items():
            self.backend.plan(key, bool(desired.replicas.get(name)))
        # route first: traffic only names ready revisions, so a revision is out of the route before it stops
        traffic = Traffic(
            targets={
                c: [(keys[t["revisionName"]], int(t.get("percent", 0))) for t in ts]
                for c, ts in desired.traffic.items()
            },
            tags={t["tag"]: keys[t["revisionName"]] for ts in desired.traffic.values() for t in ts if t.get("tag")},
            timeouts={c: float(w["timeout"]) for c, w in wanted.items() if w.get("timeout")},
            repository_api=meta.annotations.get(REPOSITORY_ANNOTATION) == "true",
            prefix_routing=meta.annotations.get(PREFIX_ROUTING_ANNOTATION) != "false",
            model_routing=meta.annotations.get(MODEL_ROUTING_ANNOTATION) == "true" or is_mms(isvc),
            aliases=aliases or {},
            blocks=desired.traffic,
        )
        self.backend.route(meta.namespace, meta.name, traffic)
        self._routed.add((meta.namespace, meta.name))
        for key in keys.values():
            self.backend.apply(key)
        reports = {name: self.backend.report(key) for name, key in keys.items()}
        for component, revs in revisions.items():  # each component's autoscaling state, per revision
            entry = (desired.status.get("components") or {}).get(component)
            report = [reports[rev.name] for rev in revs if reports.get(rev.name) is not None]
            if entry is not None and report:
                entry["autoscaling"] = report
        if publish:
            self.store.set_status("InferenceService", meta.namespace, meta.name, desired.status)
        return Reconciled(set(keys.values()), traffic, desired.status)


def failed_status(doc: dict[str, Any], exc: Exception, moment: str) -> dict[str, Any]:
    """The status of an object the controller could not reconcile: its last status, Ready False and why."""
    status = dict(doc.get("status") or {})
    condition = {
        "type": "Ready",
        "status": "False",
        "reason": "ReconcileFailed",
        "message": f"{type(exc).__name__}: {exc}"[:500],
        "lastTransitionTime": moment,
    }
    status["conditions"] = [c for c in status.get("conditions", []) if c.get("type") != "Ready"] + [condition]
    return status
