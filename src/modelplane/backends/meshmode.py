"""Backends: the controller's pass over ModelMesh InferenceServices — each multi-model runtime's shared deployment
reconciled as a derived InferenceService, each isvc's model hosted in it, its vmodel advanced, its route and status
written. control/modelmesh.py decides; the backend's ModelHost pulls, loads and watches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from modelplane.backends.seam import Backend, ModelHost, Objects, Reconciled, Traffic
from modelplane.control import modelmesh as mm
from modelplane.control.api import InferenceService, ServingRuntime
from modelplane.control.runtimes import RuntimeResolutionError, select_runtime

Reconcile = Callable[[InferenceService, list[ServingRuntime], list[ServingRuntime], dict[str, str], bool], Reconciled]


class MeshMode:
    def __init__(
        self, store: Objects, backend: Backend, host: ModelHost, reconcile: Reconcile, clock: Callable[[], str]
    ) -> None:
        self.store = store
        self.backend = backend
        self.host = host
        self.reconcile = reconcile
        self.clock = clock
        self._hosting: set[tuple[str, str]] = set()  # shared deployments given models last pass
        self.members: set[tuple[str, str]] = set()  # the ModelMesh InferenceServices of the last pass

    def concerns(self, namespace: str, name: str) -> bool:
        """Whether a change to (namespace, name) is the mesh's: one of its InferenceServices (or one that was), or
        a runtime's shared deployment."""
        return (namespace, name) in self.members or mm.is_shared_deployment(name)

    def step(
        self,
        isvcs: list[InferenceService],
        namespaced: list[ServingRuntime],
        cluster: list[ServingRuntime],
        namespace: str | None = None,
    ) -> tuple[set[str], set[tuple[str, str]]]:
        """One pass over `isvcs` (every ModelMesh InferenceService, or those of `namespace`); returns the revisions
        the shared deployments keep and the routes it set."""
        groups: dict[tuple[str, str], tuple[ServingRuntime, list[InferenceService]]] = {}
        refused: set[tuple[str, str]] = set()
        for isvc in isvcs:
            meta = isvc.metadata
            why = mm.refusal(isvc)
            if why is not None:
                refused.add(self._refuse(isvc, "InvalidPredictorSpec", why))
                continue
            assert isvc.spec.predictor.model is not None  # refusal() said so
            try:
                chosen = select_runtime(isvc.spec.predictor.model, meta.namespace, namespaced, cluster, True)
            except RuntimeResolutionError as exc:
                refused.add(self._refuse(isvc, exc.reason, exc.message))
                continue
            groups.setdefault((meta.namespace, chosen.runtime.metadata.name), (chosen.runtime, []))[1].append(isvc)
        live: set[str] = set()
        routed: set[tuple[str, str]] = set(refused)
        hosting = set()
        for (ns, _), (runtime, members) in groups.items():
            parent, revisions, routes = self._deployment(ns, runtime, members, namespaced, cluster)
            hosting.add((ns, parent))
            live |= revisions
            routed |= routes

        def scoped(keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
            return {k for k in keys if namespace is None or k[0] == namespace}

        for ns, parent in scoped(self._hosting) - hosting:  # no isvc uses the runtime any more: its models go
            self.host.host(ns, parent, {})
        self._hosting = (self._hosting - scoped(self._hosting)) | hosting
        present = {(i.metadata.namespace, i.metadata.name) for i in isvcs}
        self.members = (self.members - scoped(self.members)) | present
        return live, routed

    def _deployment(
        self,
        namespace: str,
        runtime: ServingRuntime,
        members: list[InferenceService],
        namespaced: list[ServingRuntime],
        cluster: list[ServingRuntime],
    ) -> tuple[str, set[str], set[tuple[str, str]]]:
        """One runtime's shared deployment and its InferenceServices: (its name, its revisions, the routes set)."""
        shared = mm.shared_isvc(namespace, runtime)
        parent = shared.metadata.name
        wanted: dict[str, str | None] = {}  # every target, and each active model it may replace (kept as pulled)
        for isvc in members:
            active = _active(isvc)
            if active is not None:
                wanted[active] = None
        for isvc in members:
            wanted[mm.concrete_id(isvc)] = isvc.spec.predictor.model.storage_uri if isvc.spec.predictor.model else None
        self.host.host(namespace, parent, wanted)  # registered before it is looked at (a cluster lists them now)
        plans = []
        models: dict[str, str | None] = {}
        for isvc in members:
            target, active = mm.concrete_id(isvc), _active(isvc)
            seen = {m: self.host.seen(namespace, parent, m) for m in (active, target) if m}
            now_active = mm.advance(active, target, seen.get(active or "", mm.ModelObserved()), seen[target])
            models[target] = wanted[target]
            if now_active != target:
                models[now_active] = None  # kept as pulled, serving until its successor is loaded
            plans.append((isvc, now_active, target, seen))
        if models != wanted:
            self.host.host(namespace, parent, models)  # the models the vmodels moved away from go
        aliases = {isvc.metadata.name: active for isvc, active, _, _ in plans}
        done = self.reconcile(shared, namespaced, cluster, aliases, False)
        endpoint = any(
            c.get("type") == "PredictorReady" and c.get("status") == "True" for c in done.status.get("conditions", [])
        )
        routed = {(namespace, parent)}
        for isvc, active, target, seen in plans:
            routed.add(self._publish(isvc, parent, active, target, seen, done.traffic, endpoint))
        return parent, done.revisions, routed

    def _publish(
        self,
        isvc: InferenceService,
        parent: str,
        active: str,
        target: str,
        seen: dict[str, mm.ModelObserved],
        traffic: Traffic,
        endpoint: bool,
    ) -> tuple[str, str]:
        """Route the isvc's vmodel to its concrete model, ask for the copies it needs, write its status."""
        meta = isvc.metadata
        self.backend.route(meta.namespace, meta.name, replace(traffic, aliases={meta.name: active}))
        wanted = mm.copies_wanted(active, target, seen.get(active, mm.ModelObserved()), isvc.status or {})
        self.host.load(meta.namespace, parent, target, wanted)
        urls = self.host.urls(meta.namespace, parent, meta.name)
        status = mm.status(isvc, active, target, seen, endpoint, urls, self.clock())
        self.store.set_status("InferenceService", meta.namespace, meta.name, status)
        return meta.namespace, meta.name

    def _refuse(self, isvc: InferenceService, reason: str, message: str) -> tuple[str, str]:
        meta = isvc.metadata
        self.backend.route(meta.namespace, meta.name, Traffic())  # routed nowhere, as an isvc no runtime serves
        self.store.set_status(
            "InferenceService", meta.namespace, meta.name, mm.refused_status(isvc, reason, message, self.clock())
        )
        return meta.namespace, meta.name


def _active(isvc: InferenceService) -> str | None:
    """The concrete model the isvc's vmodel served at the last pass (its status keeps it across restarts)."""
    predictor = ((isvc.status or {}).get("components") or {}).get("predictor") or {}
    active = predictor.get("activeModelId")
    return active if isinstance(active, str) and active.startswith(f"{isvc.metadata.name}__isvc-") else None
