"""Local backend: the controller loop — store → pure reconciler → replica processes, gateway routes, status."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from typing import Any

from modelplane.backends.local.autoscaler import Autoscaler
from modelplane.backends.local.gateway import REPOSITORY_ANNOTATION, Gateway, Route
from modelplane.backends.local.launch import Launcher
from modelplane.backends.local.replicas import ReplicaSet
from modelplane.control.api import InferenceService, ServingRuntime
from modelplane.control.reconciler import Observed, reconcile, template_hash, templates
from modelplane.control.runtimes import RuntimeResolutionError, builtin_runtimes
from modelplane.control.store import Revision, Store, now

log = logging.getLogger("modelplane.controller")


class Controller:
    def __init__(
        self, store: Store, replicas: ReplicaSet, gateway: Gateway, gateway_url: str, gateway_grpc: str = ""
    ) -> None:
        self.store = store
        self.replicas = replicas
        self.gateway = gateway
        self.gateway_url = gateway_url
        self.launcher = Launcher(store, gateway_url, gateway_grpc)
        self.autoscaler = Autoscaler(replicas.home, gateway, replicas)
        self.lock = threading.RLock()  # replica changes: the loop's step and the activator's scale-from-zero
        self._poked: dict[str, float] = {}
        self._broken: dict[tuple[str, str], str] = {}  # isvcs that failed to reconcile -> why (logged once)
        self._stop = asyncio.Event()

    async def run(self, interval_s: float = 0.25) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self.step)
            except Exception:  # keep the control loop alive; the next step retries
                log.exception("reconcile failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval_s)

    def stop(self) -> None:
        self._stop.set()

    # --- one pass --------------------------------------------------------------------------------------------
    def step(self) -> None:
        self.autoscaler.reload()
        self.gateway.queue_depth = self.autoscaler.config.activator_queue_depth
        with self.lock:  # the activator's thread touches replicas and deciders too
            self.replicas.tick()
            self.autoscaler.sample()
        namespaced = [ServingRuntime.model_validate(d) for d in self.store.list("ServingRuntime")]
        cluster = builtin_runtimes() + [
            ServingRuntime.model_validate(d) for d in self.store.list("ClusterServingRuntime")
        ]
        live: set[str] = set()
        routed: set[tuple[str, str]] = set()
        for doc in self.store.list("InferenceService"):
            meta = doc.get("metadata") or {}
            key = (str(meta.get("namespace", "default")), str(meta.get("name", "")))
            routed.add(key)
            try:
                isvc = InferenceService.model_validate(doc)
                live.update(self._reconcile(isvc, namespaced, cluster))
                self._broken.pop(key, None)
            except Exception as exc:  # one broken object is reported on itself; the others carry on
                if self._broken.get(key) != str(exc):  # once per new reason, not every pass
                    self._broken[key] = str(exc)
                    log.exception("reconciling %s/%s failed", *key)
                live.update(self._keep(key))
                self.store.set_status("InferenceService", *key, _failed(doc, exc))
        for key in [k for k in self._broken if k not in routed]:
            del self._broken[key]
        for key in list(self.gateway.routes):  # stop routing before stopping processes
            if key not in routed:
                self.gateway.set_route(*key, None)
        for revision in list(self.replicas.replicas):
            if revision not in live:
                with self.lock:
                    self.replicas.scale(revision, 0, None)
        for revision in set(self.autoscaler.scalers) | set(self.gateway.pools) | set(self.launcher.specs):
            if revision not in live:
                self.autoscaler.drop(revision)
                self.gateway.forget(revision)
                self.launcher.forget(revision)
                self._poked.pop(revision, None)

    def _keep(self, key: tuple[str, str]) -> set[str]:
        """The revisions of an isvc that could not be reconciled this pass keep running as they are."""
        namespace, name = key
        own = re.compile(rf"^{re.escape(namespace)}\.{re.escape(name)}-(predictor|transformer|explainer)-\d+\.")
        return {rev for rev in self.replicas.replicas if own.match(rev)}

    # --- scale from zero, asked by the activator (on the event loop) -----------------------------------------
    def activate(self, revision: str, held: int) -> None:
        moment = time.monotonic()
        if moment - self._poked.get(revision, 0.0) < 0.05:
            return
        self._poked[revision] = moment
        asyncio.get_running_loop().run_in_executor(None, self._scale_from_zero, revision, held)

    def _scale_from_zero(self, revision: str, held: int) -> None:
        with self.lock:
            want = self.autoscaler.activate(revision, held, now())
            have = len(self.replicas.replicas.get(revision, []))
            if want <= have:
                return
            spec = self.launcher.specs.get(revision)
            if spec is None and revision in self.launcher.sources:
                spec = self.launcher.spec(*self.launcher.sources[revision])
            if spec is not None:
                self.replicas.scale(revision, want, spec)

    def _reconcile(
        self, isvc: InferenceService, namespaced: list[ServingRuntime], cluster: list[ServingRuntime]
    ) -> set[str]:
        meta = isvc.metadata
        error: RuntimeResolutionError | None = None
        try:
            wanted = templates(isvc, namespaced, cluster)
        except RuntimeResolutionError as exc:
            wanted, error = {}, exc
        revisions: dict[str, list[Revision]] = {}
        for component, template in wanted.items():
            existing = self.store.revisions(meta.namespace, meta.name, component)
            digest = template_hash(template)
            if not existing or existing[-1].template_hash != digest:
                self.store.add_revision(meta.namespace, meta.name, component, digest, template)
                existing = self.store.revisions(meta.namespace, meta.name, component)
            revisions[component] = existing
        keys = {rev.name: rev.key for revs in revisions.values() for rev in revs}  # per namespace and template
        for revs in revisions.values():
            for rev in revs:  # what the activator needs to start a revision that is at zero
                self.launcher.sources[rev.key] = (isvc, rev)
        with self.lock:
            self._resume(isvc, revisions)
        observed = {
            rev.name: Observed(
                ready=self.replicas.count(rev.key)[1],
                failure=self.launcher.pull_errors.get(rev.key) or self.replicas.failure(rev.key),
                standby=self.autoscaler.standby(rev.key),
            )
            for revs in revisions.values()
            for rev in revs
        }
        desired = reconcile(
            isvc,
            revisions,
            observed,
            now=now(),
            gateway_url=self.gateway_url,
            domain=self.gateway.domain,
            resolution_error=error,
        )
        with self.lock:
            counts = self._autoscale(isvc, revisions, desired.replicas)
        scalers = self.autoscaler.scalers
        # route first: traffic only names ready revisions, so a revision is out of the route before it stops
        route = Route(
            activatable=frozenset(r for r in counts if scalers[r].spec.scale_to_zero),
            concurrency={r: scalers[r].spec.container_concurrency for r in counts},
            traffic={
                c: [(keys[t["revisionName"]], int(t.get("percent", 0))) for t in ts]
                for c, ts in desired.traffic.items()
            },
            tags={t["tag"]: keys[t["revisionName"]] for ts in desired.traffic.values() for t in ts if t.get("tag")},
            timeouts={c: float(w["timeout"]) for c, w in wanted.items() if w.get("timeout")},
            repository_api=meta.annotations.get(REPOSITORY_ANNOTATION) == "true",
        )
        self.gateway.set_route(meta.namespace, meta.name, route)
        for revs in revisions.values():
            for rev in revs:
                count = counts.get(rev.key, 0)
                if count == len(self.replicas.replicas.get(rev.key, [])):
                    continue
                spec = self.launcher.spec(isvc, rev) if count else None
                if count and spec is None:
                    continue  # the model could not be pulled; the failure is in the status
                with self.lock:
                    if rev.key in scalers:  # the activator may have decided since
                        count = max(count, scalers[rev.key].desired) if count else scalers[rev.key].desired
                    self.replicas.scale(rev.key, count, spec)
        self._scaling_status(revisions, desired.status)
        self.store.set_status("InferenceService", meta.namespace, meta.name, desired.status)
        return set(keys.values())

    def _resume(self, isvc: InferenceService, revisions: dict[str, list[Revision]]) -> None:
        """After a control-plane restart: a revision that serves traffic and has no replica was at zero — it
        resumes there (still routed, through the activator) instead of being started again."""
        status = isvc.status or {}
        for component, revs in revisions.items():
            traffic = ((status.get("components") or {}).get(component) or {}).get("traffic") or []
            serving = {t["revisionName"] for t in traffic if t.get("percent", 0) > 0}
            for rev in revs:
                if (
                    rev.name in serving
                    and rev.key not in self.autoscaler.scalers
                    and not self.replicas.count(rev.key)[0]
                ):
                    with contextlib.suppress(ValueError):  # invalid settings are reported by _autoscale
                        self.autoscaler.ensure(
                            rev, (isvc.metadata.namespace, isvc.metadata.name, component), at_zero=True
                        )

    def _autoscale(
        self, isvc: InferenceService, revisions: dict[str, list[Revision]], base: dict[str, int]
    ) -> dict[str, int]:
        """Replicas per revision key: 0 for revisions the reconciler retires, else what its autoscaler says."""
        meta, wall = isvc.metadata, now()
        counts: dict[str, int] = {}
        for component, revs in revisions.items():
            for rev in revs:
                if not base.get(rev.name):
                    self.autoscaler.drop(rev.key)
                    continue
                try:
                    self.autoscaler.ensure(rev, (meta.namespace, meta.name, component))
                except ValueError as exc:
                    self.launcher.pull_errors[rev.key] = f"invalid autoscaling settings: {exc}"
                    continue
                counts[rev.key] = self.autoscaler.decide(rev.key, wall)
        return counts

    def _scaling_status(self, revisions: dict[str, list[Revision]], status: dict[str, Any]) -> None:
        """Each component's autoscaling state, per revision that has a scaler, into the status."""
        for component, revs in revisions.items():
            report = []
            for rev in revs:
                scaler = self.autoscaler.scalers.get(rev.key)
                if scaler is None:
                    continue
                have, ready = self.replicas.count(rev.key)
                decision = scaler.decision
                report.append(
                    {
                        "revisionName": rev.name,
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
                )
            entry = (status.get("components") or {}).get(component)
            if entry is not None and report:
                entry["autoscaling"] = report


def _failed(doc: dict[str, Any], exc: Exception) -> dict[str, Any]:
    """The status of an object the controller could not reconcile: its last status, Ready False and why."""
    status = dict(doc.get("status") or {})
    condition = {
        "type": "Ready",
        "status": "False",
        "reason": "ReconcileFailed",
        "message": f"{type(exc).__name__}: {exc}"[:500],
        "lastTransitionTime": now(),
    }
    status["conditions"] = [c for c in status.get("conditions", []) if c.get("type") != "Ready"] + [condition]
    return status
