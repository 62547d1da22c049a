"""Local backend: the Backend the controller drives on one machine — a RevisionState per revision, its model
pulled in a thread (launch.py), its replica count from the autoscaler, its processes from the ReplicaSet, its
traffic through the embedded gateway; and the activator's scale-from-zero. All on the event loop, no lock."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from typing import Any

from modelplane.backends.local.autoscaler import Autoscaler
from modelplane.backends.local.gateway import Gateway, Route
from modelplane.backends.local.launch import Launcher
from modelplane.backends.local.llm_load import LlmLoad
from modelplane.backends.local.mesh_store import StoreRegistries
from modelplane.backends.local.mesh_watch import MeshWatch
from modelplane.backends.local.meshhost import MeshHost, Predictors
from modelplane.backends.local.replicas import ReplicaSet
from modelplane.backends.local.revision import Revisions, RevisionState
from modelplane.backends.local.store import Store
from modelplane.backends.local.trainedmodels import TrainedModels
from modelplane.backends.seam import Traffic
from modelplane.control.api import InferenceService
from modelplane.control.reconciler import Observed, serving_revisions
from modelplane.control.revision import Revision, now

log = logging.getLogger("modelplane.controller")
ACTIVATE_DEBOUNCE_S = 0.05  # held requests ask for a scale-from-zero at most this often per revision


class LocalBackend:
    def __init__(
        self,
        store: Store,
        revisions: Revisions,
        replicas: ReplicaSet,
        gateway: Gateway,
        gateway_url: str,
        gateway_grpc: str = "",
        placements: StoreRegistries | None = None,
    ) -> None:
        self.revisions = revisions
        self.replicas = replicas
        self.gateway = gateway
        self.gateway_url = gateway_url
        self.domain = gateway.domain
        self.launcher = Launcher(store, gateway_url, gateway_grpc)
        self.autoscaler = Autoscaler(replicas.home)
        self.llm_load = LlmLoad(gateway.replicas, gateway.upstream)
        self.mesh_watch = MeshWatch(gateway.upstream)
        predictors = Predictors(revisions, gateway)
        self.trained = TrainedModels(store, replicas.home / "mms", predictors, gateway.upstream, now)
        self.models = MeshHost(self.trained, predictors, gateway, gateway_url)
        self.launcher.repository = self.trained.repository
        self.placements = placements  # multi-model placement saved in the store (None: kept in etcd)

    async def commit(self) -> None:
        """Nothing to write out: routes and replicas changed in the calls of the pass."""

    async def sync(self) -> None:
        self.autoscaler.reload()
        self.gateway.queue_depth = self.autoscaler.config.activator_queue_depth
        await self.replicas.tick()
        scalers = {s.key: s.scaler for s in self.revisions if s.scaler is not None}
        llm = await self.llm_load.read({key: scaler.spec.metric for key, scaler in scalers.items()})
        await self.mesh_watch.read(self.gateway.pools)
        if self.placements is not None:
            await self.placements.save()
        await self.trained.step()
        self.autoscaler.sample(self.gateway.pools, scalers, llm)

    def observe(self, isvc: InferenceService, component: str, revision: Revision) -> Observed:
        state = self.revisions.get(revision.key)
        if state is None:
            owner = (isvc.metadata.namespace, isvc.metadata.name, component)
            state = self.revisions.add(RevisionState(revision.key, owner, isvc, revision))
            self.replicas.claim(state)
        state.isvc = isvc  # annotations and the like may change without a new revision
        if state.scaler is None and not state.replicas and revision.name in serving_revisions(isvc, component):
            # after a control-plane restart: a revision that serves traffic and has no replica was at zero — it
            # resumes there (still routed, through the activator) instead of being started again
            with contextlib.suppress(ValueError):  # invalid settings are reported by plan()
                self.autoscaler.ensure(state, at_zero=True)
        have, ready = state.count()
        return Observed(
            ready=ready,
            failure=state.failure,
            standby=state.scaler is not None and state.scaler.at_zero,
            starting=have - ready,
        )

    def plan(self, key: str, run: bool) -> None:
        state = self.revisions.get(key)
        if state is None:
            return
        state.planned = 0
        if not run:
            state.scaler = None
            return
        try:
            self.autoscaler.ensure(state)
        except ValueError as exc:
            state.error = f"invalid autoscaling settings: {exc}"
            return
        state.planned = self.autoscaler.decide(state, now())

    def report(self, key: str) -> dict[str, Any] | None:
        state = self.revisions.get(key)
        scaler = state.scaler if state is not None else None
        if state is None or scaler is None:
            return None
        have, ready = state.count()
        decision = scaler.decision
        return {
            "revisionName": state.revision.name,
            "class": scaler.spec.klass,
            "metric": scaler.spec.metric,
            "target": scaler.spec.target,
            "desiredReplicas": scaler.desired,
            "actualReplicas": have,
            "readyReplicas": ready,
            "panic": decision.panic,
            "activatorInPath": decision.activator,
            "lastScaleTime": scaler.changed_at,
            "reason": scaler.reason,
        }

    def route(self, namespace: str, name: str, traffic: Traffic | None) -> None:
        if traffic is None:
            self.gateway.set_route(namespace, name, None)
            return
        named = {key for targets in traffic.targets.values() for key, _ in targets} | set(traffic.tags.values())
        scalers = [(k, s.scaler) for k in named if (s := self.revisions.get(k)) is not None and s.scaler is not None]
        route = Route(
            traffic=traffic.targets,
            tags=traffic.tags,
            timeouts=traffic.timeouts,
            activatable=frozenset(k for k, scaler in scalers if scaler.spec.scale_to_zero),
            concurrency={k: scaler.spec.container_concurrency for k, scaler in scalers},
            repository_api=traffic.repository_api,
            prefix_routing=traffic.prefix_routing,
            model_routing=traffic.model_routing,
            aliases=traffic.aliases,
        )
        self.gateway.set_route(namespace, name, route)

    def apply(self, key: str) -> None:
        state = self.revisions.get(key)
        if state is None or state.planned == len(state.replicas):
            return
        if state.planned and self.launcher.spec(state) is None:
            return  # its model is being pulled (or could not be: the failure is in the status)
        self.replicas.scale(state, state.planned)

    def retire(self, live: set[str]) -> None:
        for state in self.revisions:
            if state.key not in live:
                self.replicas.scale(state, 0)
                self.gateway.forget(state.key)
                self.revisions.remove(state.key)
                if self.placements is not None:
                    self.placements.forget(state.key)
        self.replicas.release_unclaimed(live)

    def owned(self, namespace: str, name: str) -> set[str]:
        own = re.compile(rf"^{re.escape(namespace)}\.{re.escape(name)}-(predictor|transformer|explainer)-\d+\.")
        return {key for key in self.revisions.keys() | set(self.replicas.adopted) if own.match(key)}

    # --- scale from zero, asked by the activator (on the event loop) -----------------------------------------
    def activate(self, revision: str, held: int) -> None:
        """Requests are held for a revision with no ready replica: decide now and start replicas (never raises
        into the data path; a failure lands in the revision's status)."""
        state = self.revisions.get(revision)
        moment = time.monotonic()
        if state is None or moment - state.poked < ACTIVATE_DEBOUNCE_S:
            return
        state.poked = moment
        try:
            want = self.autoscaler.activate(state, held, now())
            if want > len(state.replicas) and self.launcher.spec(state) is not None:
                state.planned = max(state.planned, want)
                self.replicas.scale(state, want)  # else: its pull is running; the next pass starts it
        except Exception as exc:
            log.exception("activating %s failed", revision)
            state.error = f"scale from zero failed: {type(exc).__name__}: {exc}"
