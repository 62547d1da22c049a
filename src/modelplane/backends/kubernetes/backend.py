"""Kubernetes backend: the controller's seam on a cluster. A pass reads the watch cache (observe: Deployments'
rollouts in Standard mode, Knative Services' revisions in Knative mode) and records decisions; `commit` writes
them — an InferenceService's new revisions, every rendered object that differs from the cluster's (server-side
apply) and its status at once, then stale objects removed — and nothing at all when nothing changed."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from modelplane.backends.controller import failed_status
from modelplane.backends.kubernetes.cache import Cache, Key, PendingRevision, kind_key
from modelplane.backends.kubernetes.canary import CANARY_SUFFIX, apply_split, split, tag_routes
from modelplane.backends.kubernetes.client import ApiError, Writer
from modelplane.backends.kubernetes.config import ClusterConfig
from modelplane.backends.kubernetes.modelmesh import ClusterModels
from modelplane.backends.kubernetes.render import MODELS_KEY, mode_of, render
from modelplane.backends.kubernetes.render.meta import component_name, host, owner
from modelplane.backends.kubernetes.trained import ClusterTrainedModels
from modelplane.backends.seam import Traffic
from modelplane.control import trainedmodel as tmctl
from modelplane.control.api import ISVC_API, InferenceService, ServingRuntime
from modelplane.control.modelmesh import is_modelmesh
from modelplane.control.reconciler import COMPONENTS, TAG_ROUTING, Observed, serving_revisions
from modelplane.control.revision import Revision, now
from modelplane.control.runtimes import with_builtins

log = logging.getLogger("modelplane.operator")
REVISION_ANNOTATION = "serving.kserve.io/revision"  # on a Standard-mode Deployment: the revision it runs
KNATIVE = "serving.knative.dev/v1"


class ClusterBackend:
    gateway_url = ""  # requests reach a cluster through its ingress, not an embedded gateway

    def __init__(self, cache: Cache, writer: Writer, config: ClusterConfig) -> None:
        self.cache = cache
        self.writer = writer
        self.config = config
        self.domain = config.ingress.ingressDomain
        self._touched: set[Key] = set()
        self._traffic: dict[Key, Traffic] = {}
        self._gone: set[Key] = set()  # InferenceServices deleted since the last commit (their TrainedModels go)
        self.models = ClusterModels(cache)  # ModelMesh InferenceServices' models in their runtimes' deployments
        self.trained = ClusterTrainedModels(cache, writer)
        self._derived: dict[Key, InferenceService] = {}  # runtimes' shared deployments (no object of their own)
        self.written: dict[Key, int] = {}  # API writes made for each InferenceService so far
        cache.decorate = self.decorate

    def decorate(self, doc: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """KServe's cluster addresses in the reconciler's status: the isvc's in-cluster address, each component's
        URL and each tagged traffic target's (the reconciler, knowing no cluster, writes only the public URL)."""
        isvc = InferenceService.model_validate(doc)
        if is_modelmesh(isvc):
            return status  # its addresses are its runtime deployment's, written by the controller's mesh pass
        ns, name = isvc.metadata.namespace, isvc.metadata.name
        knative = mode_of(isvc, self.config) == "Knative"
        components = status.get("components") or {}

        def url(name: str) -> str:
            return f"http://{name}.{ns}.{self.domain}" if knative else f"http://{host(self.config.ingress, isvc, name)}"

        for component, entry in components.items():
            full = component_name(isvc, component)
            entry["url"] = url(full)
            if entry.get("traffic"):  # a tagged target's own host, as Knative reports it
                entry["traffic"] = [
                    {**t, "url": url(f"{t['tag']}-{full}")} if t.get("tag") else t for t in entry["traffic"]
                ]
        if status.get("url"):
            entry_svc = (
                name if knative else component_name(isvc, "transformer" if "transformer" in components else "predictor")
            )
            status["address"] = {"url": f"http://{entry_svc}.{ns}.svc.cluster.local"}
        return status

    # --- the pass (no I/O) -----------------------------------------------------------------------------------
    async def sync(self) -> None:
        """Nothing to refresh: the watch keeps the cache current."""

    def observe(self, isvc: InferenceService, component: str, revision: Revision) -> Observed:
        meta = isvc.metadata
        self._touched.add((meta.namespace, meta.name))
        if self.cache.get(ISVC_API, "InferenceService", meta.namespace, meta.name) is None:
            self._derived[(meta.namespace, meta.name)] = isvc  # a runtime's shared deployment (ModelMesh)
        name = component_name(isvc, component)
        if mode_of(isvc, self.config) == "Knative":
            return _knative_observed(self.cache.get(KNATIVE, "Service", meta.namespace, name), revision.name)
        canary = self.cache.get("apps/v1", "Deployment", meta.namespace, name + CANARY_SUFFIX)
        if canary is not None and _annotations(canary).get(REVISION_ANNOTATION) == revision.name:
            return _deployment_observed(canary)
        deployment = self.cache.get("apps/v1", "Deployment", meta.namespace, name)
        if deployment is None:
            return Observed()
        seen = _deployment_observed(deployment)
        if _annotations(deployment).get(REVISION_ANNOTATION) == revision.name:
            return seen
        if seen.ready == 0 and revision.name in serving_revisions(isvc, component):
            # rolling from this revision to a newer one: its old pods serve until the new ones are available
            available = int((deployment.get("status") or {}).get("availableReplicas") or 0)
            return Observed(ready=available)
        return Observed()

    def plan(self, key: str, run: bool) -> None:
        """The cluster's autoscaler (HPA, KEDA, Knative's KPA) decides replica counts."""

    def route(self, namespace: str, name: str, traffic: Traffic | None) -> None:
        if traffic is None:
            self._traffic.pop((namespace, name), None)
            self._derived.pop((namespace, name), None)  # a runtime's shared deployment its last member left
            self._gone.add((namespace, name))
        else:
            self._traffic[(namespace, name)] = traffic
            self._touched.add((namespace, name))

    def apply(self, key: str) -> None:
        """Objects are written in `commit`, all of an InferenceService's at once."""

    def report(self, key: str) -> dict[str, Any] | None:
        return None

    def retire(self, live: set[str]) -> None:
        """Deleted InferenceServices' objects go with them (owner references); stale ones are removed in commit."""

    def owned(self, namespace: str, name: str) -> set[str]:
        return set()

    # --- the writes ------------------------------------------------------------------------------------------
    async def commit(self) -> None:
        gone, self._gone = self._gone, set()
        await self.trained.orphans(gone)
        touched, self._touched = self._touched, set()
        revisions = [r for r in self.cache.new_revisions if (r.namespace, r.isvc) in touched]
        self.cache.new_revisions = [r for r in self.cache.new_revisions if (r.namespace, r.isvc) not in touched]
        statuses = {k: self.cache.statuses.pop(k) for k in list(self.cache.statuses) if k in touched}
        keys = sorted(touched)
        results = await asyncio.gather(
            *(self._commit_one(k, [r for r in revisions if (r.namespace, r.isvc) == k], statuses.get(k)) for k in keys),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _commit_one(self, key: Key, revisions: list[PendingRevision], status: dict[str, Any] | None) -> None:
        """One InferenceService's writes. Its new revisions, objects and status do not depend on one another on
        the API server (the objects name their revision from the cache, which holds it already), so they go at
        once: an InferenceService's latency is one round trip, not three."""
        doc = self.cache.get(ISVC_API, "InferenceService", *key)
        if doc is None:
            derived = self._derived.get(key)
            owners = self.models.owners(key) if derived is not None else []
            if owners:  # a runtime's shared deployment, owned by the InferenceServices it serves
                await _first_error(
                    [self._revision(derived, p, owners) for p in revisions] + [self._objects(derived, owners)]
                )
            return
        isvc = InferenceService.model_validate(doc)
        writes = [self._revision(isvc, pending) for pending in revisions]
        if not is_modelmesh(isvc):  # a ModelMesh one has no objects: it is a model in its runtime's deployment
            writes.append(self._objects(isvc))
        if status is not None:
            writes.append(self._status(key, doc, status))
        writes += self.trained.statuses(InferenceService.model_validate(doc), status)
        results = await asyncio.gather(*writes, return_exceptions=True)
        refused = next((r for r in results if isinstance(r, BaseException)), None)
        if isinstance(refused, ApiError):  # the API server refused a write: say so on the isvc, retry later
            failed = failed_status(doc, refused, now())
            if failed != doc.get("status"):
                await self._status(key, doc, failed)
        if refused is not None:
            raise refused

    async def _revision(
        self, isvc: InferenceService, pending: PendingRevision, owners: list[dict[str, Any]] | None = None
    ) -> None:
        pending.body["metadata"]["ownerReferences"] = owners if owners is not None else owner(isvc)
        self._wrote((pending.namespace, pending.isvc))
        try:
            self.cache.seen(await self.writer.create(pending.body))
        except ApiError as exc:
            if exc.status != 409:  # already there (an earlier operator wrote it): the watch brings it
                raise

    async def _status(self, key: Key, doc: dict[str, Any], status: dict[str, Any]) -> None:
        self._wrote(key)
        await self.writer.patch_status(ISVC_API, "InferenceService", *key, status)
        doc["status"] = status  # until the watch brings the object back: no second write of the same status

    async def _objects(self, isvc: InferenceService, owners: list[dict[str, Any]] | None = None) -> None:
        """Apply what differs and remove what it no longer renders; `owners`: the owner references of a derived
        InferenceService's objects (it has no uid of its own)."""
        meta = isvc.metadata
        desired, kept = self.desired(isvc)
        if owners is not None:
            for obj in desired:
                obj["metadata"]["ownerReferences"] = owners
        wanted = {(kind_key(o["apiVersion"], o["kind"]), o["metadata"]["name"]) for o in desired} | kept
        changed = []
        for obj in desired:
            live = self.cache.get(obj["apiVersion"], obj["kind"], meta.namespace, obj["metadata"]["name"])
            if live is None or not covers(live, obj):
                log.debug("apply %s %s/%s", obj["kind"], meta.namespace, obj["metadata"]["name"])
                self._wrote((meta.namespace, meta.name))
                changed.append(obj)
        # independent objects, applied at once: an InferenceService's latency is one round trip, not one per object
        results = await asyncio.gather(*(self.writer.apply(obj) for obj in changed), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
            self.cache.seen(result)
        for child in self.cache.children(meta.namespace, meta.name):
            cm = child["metadata"]
            ours = any(r.get("uid") == meta.uid and r.get("controller") for r in cm.get("ownerReferences") or [])
            if ours and (kind_key(child["apiVersion"], child["kind"]), cm["name"]) not in wanted:
                self._wrote((meta.namespace, meta.name))
                await self.writer.delete(child["apiVersion"], child["kind"], meta.namespace, cm["name"])
                self.cache.gone(child)

    def _wrote(self, key: Key) -> None:
        self.written[key] = self.written.get(key, 0) + 1

    def desired(self, isvc: InferenceService) -> tuple[list[dict[str, Any]], set[tuple[str, str]]]:
        """What the InferenceService renders to now: its latest revision per component, and in Knative mode the
        traffic the reconciler decided, by revision name; in Standard mode, a component in a canary has its latest
        in the canary objects and its stable objects kept as they are (returned as the second item), and the tag
        hosts are routed when tag routing is asked for."""
        meta = isvc.metadata
        namespaced = [ServingRuntime.model_validate(d) for d in self.cache.list("ServingRuntime", meta.namespace)]
        cluster = with_builtins([ServingRuntime.model_validate(d) for d in self.cache.list("ClusterServingRuntime")])
        knative = mode_of(isvc, self.config) == "Knative"
        traffic = self._knative_traffic(self._traffic.get((meta.namespace, meta.name))) if knative else None
        objects = render(isvc, self.config, namespaced, cluster, traffic=traffic)
        for obj in objects:
            if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == tmctl.config_name(meta.name):
                key = (meta.namespace, meta.name)
                hosted = self.models.models(key) if key in self.models.hosted else None
                models = hosted if hosted is not None else tmctl.model_list(self.trained.of(*key))
                obj["data"][MODELS_KEY] = json.dumps(models, sort_keys=True)
            component = (obj["metadata"].get("labels") or {}).get("component")
            if component is None or obj["kind"] not in ("Deployment", "Service"):
                continue
            revs = self.cache.revisions(meta.namespace, meta.name, component)
            if not revs:
                continue
            if obj["apiVersion"] == "apps/v1":
                obj["metadata"].setdefault("annotations", {})[REVISION_ANNOTATION] = revs[-1].name
            elif obj["apiVersion"] == KNATIVE:
                obj["spec"]["template"]["metadata"]["name"] = revs[-1].name  # Knative names it as we do
        if knative:
            return objects, set()
        routed = self._traffic.get((meta.namespace, meta.name))
        tags = meta.annotations.get(TAG_ROUTING) == "true"
        kept: set[tuple[str, str]] = set()
        for component in COMPONENTS:
            revs = self.cache.revisions(meta.namespace, meta.name, component)
            if getattr(isvc.spec, component) is None or not revs:
                continue
            s = None if routed is None else split(isvc, component, revs[-1].name, routed.blocks.get(component) or [])
            if s is not None:
                objects, keep = apply_split(objects, isvc, component, s)
                kept |= keep
            if tags:
                objects = tag_routes(objects, isvc, component, s, self.config.ingress)
        return objects, kept

    @staticmethod
    def _knative_traffic(traffic: Traffic | None) -> dict[str, list[dict[str, Any]]] | None:
        """Knative's traffic block from the reconciler's targets: the latest ready revision as `latestRevision:
        true` (Knative resolves it to its latest ready revision, which is what the reconciler means), the others
        by name; tags as they are."""
        if traffic is None:
            return None
        out: dict[str, list[dict[str, Any]]] = {}
        for component, targets in traffic.blocks.items():
            block = []
            for t in targets:
                entry: dict[str, Any] = (
                    {"latestRevision": True} if t.get("latestRevision") else {"revisionName": t["revisionName"]}
                )
                entry["percent"] = int(t.get("percent", 0))
                if t.get("tag"):
                    entry["tag"] = t["tag"]
                block.append(entry)
            if block:
                out[component] = block
        return out


async def _first_error(writes: list[Any]) -> None:
    """Run the writes at once; raise the first failure after all finished."""
    for result in await asyncio.gather(*writes, return_exceptions=True):
        if isinstance(result, BaseException):
            raise result


def covers(live: Any, desired: Any) -> bool:
    """Whether `live` already holds everything `desired` sets (the API server adds defaults and status)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(k in live and covers(live[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(live, list) and len(live) == len(desired) and all(map(covers, live, desired))
    return live == desired or (isinstance(desired, int | float) and str(live) == str(desired))


def _annotations(body: dict[str, Any]) -> dict[str, str]:
    return (body.get("metadata") or {}).get("annotations") or {}


def _condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (body.get("status") or {}).get("conditions") or [] if c.get("type") == kind), {})


def _deployment_observed(deployment: dict[str, Any]) -> Observed:
    """A Standard-mode revision is ready when its Deployment's rollout finished with an available replica."""
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    rolled = status.get("observedGeneration", 0) >= generation and status.get("updatedReplicas", 0) >= status.get(
        "replicas", 0
    )
    available = int(status.get("availableReplicas") or 0)
    failed = _condition(deployment, "Progressing")
    failure = failed.get("message", "") if failed.get("reason") == "ProgressDeadlineExceeded" else ""
    replica_failure = _condition(deployment, "ReplicaFailure")
    if replica_failure.get("status") == "True":
        failure = replica_failure.get("message", "")
    if rolled and available:
        return Observed(ready=available, failure=failure)
    return Observed(starting=int(status.get("replicas") or 0), failure=failure)


def _knative_observed(ksvc: dict[str, Any] | None, revision: str) -> Observed:
    """From the Knative Service's status: its latest ready revision and the revisions its route serves."""
    if ksvc is None:
        return Observed()
    status = ksvc.get("status") or {}
    serving = {t.get("revisionName") for t in status.get("traffic") or []}
    if revision == status.get("latestReadyRevisionName") or revision in serving:
        return Observed(ready=1)
    failure = ""
    if revision == status.get("latestCreatedRevisionName"):
        condition = _condition(ksvc, "ConfigurationsReady")
        if condition.get("status") == "False":
            failure = condition.get("message", "")
    return Observed(failure=failure)
