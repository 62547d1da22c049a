"""The Kubernetes backend driven by the shared controller over an in-memory cache and writer: what it writes for a
new InferenceService, that it writes nothing when nothing changed, how a rollout and a Knative revision move
traffic, and that it removes only what it owns. (The live tests run the same code against a real API server.)"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from modelplane.backends.controller import Controller
from modelplane.backends.kubernetes.backend import REVISION_ANNOTATION, ClusterBackend, covers
from modelplane.backends.kubernetes.cache import Cache
from modelplane.backends.kubernetes.client import ApiError, MemoryWriter
from modelplane.backends.kubernetes.config import ClusterConfig
from modelplane.backends.kubernetes.events import WorkQueue

UID = "uid-iris"


def isvc(uri: str = "gs://models/iris", mode: str = "Standard", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "iris",
            "namespace": "ml",
            "uid": UID,
            "generation": 1,
            "annotations": {"serving.kserve.io/deploymentMode": mode},
        },
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri}}, **spec},
    }


class World:
    def __init__(self, config: ClusterConfig | None = None) -> None:
        self.cache = Cache()
        self.writer = MemoryWriter()
        self.backend = ClusterBackend(self.cache, self.writer, config or ClusterConfig())
        self.controller = Controller(self.cache, self.backend, clock=lambda: "2026-11-30T00:00:00Z")

    def put(self, doc: dict[str, Any]) -> None:
        old = self.cache.get(doc["apiVersion"], doc["kind"], doc["metadata"]["namespace"], doc["metadata"]["name"])
        if old is not None and "status" in old and "status" not in doc:
            doc = {**doc, "status": old["status"]}
        self.cache.seen(copy.deepcopy(doc))

    def reconcile(self) -> list[tuple[str, str, str]]:
        before = len(self.writer.log)
        asyncio.run(self.controller.reconcile("ml", "iris"))
        return self.writer.log[before:]

    def status(self) -> dict[str, Any]:
        return self.cache.get("serving.kserve.io/v1beta1", "InferenceService", "ml", "iris")["status"]

    def ready(self) -> bool:
        return any(c["type"] == "Ready" and c["status"] == "True" for c in self.status()["conditions"])

    def deployment(self, name: str = "iris-predictor") -> dict[str, Any]:
        return self.cache.get("apps/v1", "Deployment", "ml", name)

    def report(self, api: str, kind: str, name: str, status: dict[str, Any]) -> None:
        """A controller of the cluster writes the object's status; the watch brings it to the cache."""
        stored = self.writer.objects[(api, kind, "ml", name)]
        stored["status"] = status
        self.cache.seen(copy.deepcopy(stored))

    def roll_out(self, name: str = "iris-predictor", replicas: int = 1, done: bool = True) -> None:
        """What the Deployment controller and kubelet report: the rollout finished (or only begun)."""
        generation = self.writer.objects[("apps/v1", "Deployment", "ml", name)]["metadata"]["generation"]
        status = {"observedGeneration": generation, "replicas": replicas}
        status["updatedReplicas"] = replicas if done else 0
        status["availableReplicas"] = replicas
        self.report("apps/v1", "Deployment", name, status)


@pytest.fixture
def world() -> World:
    return World()


def test_a_new_isvc_gets_a_revision_its_objects_and_a_status_then_no_writes(world: World) -> None:
    world.put(isvc())
    writes = world.reconcile()
    assert sorted(writes) == [  # independent writes, made at once
        ("apply", "Deployment", "iris-predictor"),
        ("apply", "HorizontalPodAutoscaler", "iris-predictor"),
        ("apply", "Ingress", "iris"),
        ("apply", "Service", "iris-predictor"),
        ("create", "ControllerRevision", "iris-predictor-00001"),
        ("status", "InferenceService", "iris"),
    ]
    revision = world.cache.get("apps/v1", "ControllerRevision", "ml", "iris-predictor-00001")
    assert revision["metadata"]["ownerReferences"][0]["uid"] == UID
    assert world.deployment()["metadata"]["annotations"][REVISION_ANNOTATION] == "iris-predictor-00001"
    assert not world.ready()
    assert world.reconcile() == []  # nothing changed: nothing written


def test_the_isvc_turns_ready_when_its_deployment_is_available(world: World) -> None:
    world.put(isvc())
    world.reconcile()
    world.roll_out()
    assert world.reconcile() == [("status", "InferenceService", "iris")]
    assert world.ready()
    status = world.status()
    assert status["url"] == "http://iris-ml.example.com"
    assert status["address"] == {"url": "http://iris-predictor.ml.svc.cluster.local"}
    assert status["components"]["predictor"]["url"] == "http://iris-predictor-ml.example.com"
    assert status["components"]["predictor"]["latestReadyRevision"] == "iris-predictor-00001"
    assert world.reconcile() == []


def test_a_rollout_keeps_the_isvc_ready_and_moves_to_the_new_revision_when_done(world: World) -> None:
    world.put(isvc())
    world.reconcile()
    world.roll_out()
    world.reconcile()
    world.put(isvc(uri="gs://models/iris-v2"))
    writes = world.reconcile()
    assert ("create", "ControllerRevision", "iris-predictor-00002") in writes
    assert ("apply", "Deployment", "iris-predictor") in writes
    d = world.deployment()
    assert d["metadata"]["annotations"][REVISION_ANNOTATION] == "iris-predictor-00002"
    d["metadata"]["generation"] = 2  # the rollout has begun: the old pods still serve
    d["status"]["updatedReplicas"] = 0
    world.reconcile()
    assert world.ready()
    assert world.status()["components"]["predictor"]["latestReadyRevision"] == "iris-predictor-00001"
    world.roll_out()
    world.reconcile()
    predictor = world.status()["components"]["predictor"]
    assert predictor["latestReadyRevision"] == "iris-predictor-00002"
    assert predictor["traffic"][0]["revisionName"] == "iris-predictor-00002"


def test_only_owned_objects_that_are_no_longer_rendered_are_deleted(world: World) -> None:
    transformer = {"containers": [{"name": "kserve-container", "image": "example.com/t:1"}]}
    world.put(isvc(transformer=transformer))
    world.reconcile()
    assert world.deployment("iris-transformer") is not None
    stranger = {  # labelled as ours, but owned by something else (Knative's revision Deployments are)
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "iris-predictor-00001-deployment",
            "namespace": "ml",
            "labels": {"serving.kserve.io/inferenceservice": "iris"},
            "ownerReferences": [{"uid": "someone-else", "controller": True}],
        },
    }
    world.put(stranger)
    world.put(isvc())  # the transformer is removed
    writes = world.reconcile()
    deleted = sorted(name for verb, _, name in writes if verb == "delete")
    assert deleted == ["iris-transformer", "iris-transformer", "iris-transformer"]  # Deployment, Service, HPA
    assert world.deployment("iris-predictor-00001-deployment") is not None


def test_knative_mode_names_revisions_and_follows_the_knative_service(world: World) -> None:
    world.put(isvc(mode="Knative"))
    world.reconcile()
    ksvc = world.cache.get("serving.knative.dev/v1", "Service", "ml", "iris-predictor")
    assert ksvc["spec"]["template"]["metadata"]["name"] == "iris-predictor-00001"
    assert ksvc["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]
    knative = ("serving.knative.dev/v1", "Service", "iris-predictor")
    world.report(*knative, {"latestReadyRevisionName": "iris-predictor-00001"})
    world.reconcile()
    assert world.ready()
    assert world.status()["url"] == "http://iris.ml.example.com"
    assert world.status()["address"] == {"url": "http://iris.ml.svc.cluster.local"}
    world.put(isvc(uri="gs://models/iris-v2", mode="Knative"))
    world.reconcile()
    ksvc = world.cache.get("serving.knative.dev/v1", "Service", "ml", "iris-predictor")
    assert ksvc["spec"]["template"]["metadata"]["name"] == "iris-predictor-00002"
    # Knative sends `latestRevision` to its latest *ready* revision: 00001 until 00002 is ready
    assert ksvc["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]
    world.report(*knative, {"latestReadyRevisionName": "iris-predictor-00002"})
    world.reconcile()
    assert world.status()["components"]["predictor"]["latestReadyRevision"] == "iris-predictor-00002"


def test_a_refused_write_surfaces_and_the_next_pass_retries(world: World) -> None:
    world.put(isvc())
    world.writer.fail["iris-predictor"] = ApiError(500, "failed to allocate a serviceIP: range is full")
    with pytest.raises(ApiError):
        world.reconcile()
    ready = next(c for c in world.status()["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and "range is full" in ready["message"]  # the reason reaches the status
    del world.writer.fail["iris-predictor"]
    writes = world.reconcile()
    assert ("apply", "Service", "iris-predictor") in writes and ("apply", "Ingress", "iris") in writes


def test_covers_ignores_what_the_api_server_adds() -> None:
    desired = {"spec": {"replicas": 1, "ports": [{"port": 80}]}}
    assert covers({"spec": {"replicas": 1, "ports": [{"port": 80, "protocol": "TCP"}], "x": 1}, "status": {}}, desired)
    assert not covers({"spec": {"replicas": 2, "ports": [{"port": 80}]}}, desired)
    assert not covers({"spec": {"replicas": 1, "ports": [{"port": 80}, {"port": 81}]}}, desired)


def test_the_work_queue_runs_a_key_once_at_a_time_and_again_if_it_changed_meanwhile() -> None:
    clock = [0.0]

    async def scenario() -> list[tuple[tuple[str, str], float]]:
        queue = WorkQueue(clock=lambda: clock[0])
        queue.add(("ml", "a"))
        clock[0] = 1.0
        queue.add(("ml", "a"))  # already queued: still waiting since 0
        queue.add(("ml", "b"))
        clock[0] = 3.0
        first = await queue.get()
        queue.add(first[0])  # changed while being reconciled
        second = await queue.get()
        clock[0] = 4.0
        queue.done(first[0])  # now it comes back, once
        clock[0] = 4.5
        third = await queue.get()
        assert queue._ready.empty()
        return [first, second, third]

    # each with how long it waited in the queue
    assert asyncio.run(scenario()) == [(("ml", "a"), 3.0), (("ml", "b"), 2.0), (("ml", "a"), 0.5)]


def test_only_events_that_can_change_a_decision_queue_a_reconcile() -> None:
    from modelplane.backends.kubernetes.events import ISVC, matters

    isvc_doc = isvc()
    with_status = {
        **isvc_doc,
        "status": {"url": "http://x"},
        "metadata": {**isvc_doc["metadata"], "resourceVersion": "9"},
    }
    assert not matters(ISVC, isvc_doc, with_status)  # the operator's own status write
    relabelled = copy.deepcopy(isvc_doc)
    relabelled["metadata"]["labels"] = {"team": "fraud"}
    assert matters(ISVC, isvc_doc, relabelled)
    deployment = {"metadata": {"name": "d", "resourceVersion": "1"}, "spec": {"replicas": 1}}
    rolled = {**deployment, "metadata": {"name": "d", "resourceVersion": "2"}, "status": {"availableReplicas": 1}}
    assert matters(("apps/v1", "Deployment"), deployment, rolled)  # observe reads it
    hpa = ("autoscaling/v2beta2", "HorizontalPodAutoscaler")
    assert not matters(hpa, deployment, rolled)  # nobody reads an HPA's status
    assert not matters(("v1", "Service"), deployment, {**deployment, "metadata": {"name": "d", "resourceVersion": "3"}})
    drifted = {**deployment, "spec": {"replicas": 1, "type": "NodePort"}}
    assert matters(("v1", "Service"), deployment, drifted)  # someone changed what the operator owns


def test_a_knative_canary_splits_promotes_and_rolls_back_through_the_traffic_block(world: World) -> None:
    knative = ("serving.knative.dev/v1", "Service", "iris-predictor")

    def traffic() -> list[dict[str, Any]]:
        return world.cache.get(*knative[:2], "ml", "iris-predictor")["spec"]["traffic"]

    def serve(ready: str, routed: list[dict[str, Any]]) -> None:  # what Knative reports
        world.report(*knative, {"latestReadyRevisionName": ready, "traffic": routed})
        world.reconcile()
        world.reconcile()

    world.put(isvc(mode="Knative"))
    world.reconcile()
    serve("iris-predictor-00001", [{"revisionName": "iris-predictor-00001", "percent": 100}])
    doc = isvc(uri="gs://models/iris-v2", mode="Knative")
    doc["spec"]["predictor"]["canaryTrafficPercent"] = 20
    world.put(doc)
    world.reconcile()
    split = [
        {"latestRevision": True, "percent": 20},  # the latest ready revision: 00002 once Knative has it ready
        {"revisionName": "iris-predictor-00001", "percent": 80, "tag": "prev"},
    ]
    assert traffic() == split
    serve("iris-predictor-00002", [{"revisionName": "iris-predictor-00002", "percent": 20}, split[1]])
    assert traffic() == split
    assert world.status()["components"]["predictor"]["latestReadyRevision"] == "iris-predictor-00002"
    doc["spec"]["predictor"]["canaryTrafficPercent"] = 0  # roll back: the canary stays, dark
    world.put(doc)
    world.reconcile()
    assert traffic() == [
        {"latestRevision": True, "percent": 0},
        {"revisionName": "iris-predictor-00001", "percent": 100, "tag": "prev"},
    ]
    del doc["spec"]["predictor"]["canaryTrafficPercent"]  # promote
    world.put(doc)
    world.reconcile()
    assert traffic() == [{"latestRevision": True, "percent": 100}]


def test_a_standard_canary_runs_beside_the_stable_deployment_with_weighted_routes() -> None:
    from dataclasses import replace

    world = World(ClusterConfig(ingress=replace(ClusterConfig().ingress, enableGatewayApi=True)))

    def weights() -> list[tuple[str, int]]:
        route = world.cache.get("gateway.networking.k8s.io/v1", "HTTPRoute", "ml", "iris-predictor")
        return [(r["name"], r.get("weight", 100)) for r in route["spec"]["rules"][0]["backendRefs"]]

    def uri(name: str) -> str:
        return world.deployment(name)["spec"]["template"]["spec"]["initContainers"][0]["args"][0]

    world.put(isvc())
    world.reconcile()
    world.roll_out()
    world.reconcile()
    doc = isvc(uri="gs://models/iris-v2")
    doc["spec"]["predictor"]["canaryTrafficPercent"] = 20
    world.put(doc)
    world.reconcile()
    assert uri("iris-predictor") == "gs://models/iris"  # the stable Deployment is left as it runs
    assert uri("iris-predictor-canary") == "gs://models/iris-v2"
    assert world.deployment("iris-predictor-canary")["spec"]["replicas"] == 1
    assert world.cache.get("autoscaling/v2", "HorizontalPodAutoscaler", "ml", "iris-predictor-canary") is None
    assert weights() == [("iris-predictor", 100), ("iris-predictor-canary", 0)]  # not ready: no share yet
    world.roll_out("iris-predictor-canary")
    world.reconcile()
    world.reconcile()
    assert weights() == [("iris-predictor", 80), ("iris-predictor-canary", 20)]
    assert world.status()["components"]["predictor"]["latestReadyRevision"] == "iris-predictor-00002"
    doc["spec"]["predictor"]["canaryTrafficPercent"] = 0  # roll back: the canary stays, without traffic
    world.put(doc)
    world.reconcile()
    assert weights() == [("iris-predictor", 100), ("iris-predictor-canary", 0)]
    del doc["spec"]["predictor"]["canaryTrafficPercent"]  # promote: the stable Deployment rolls to the latest
    world.put(doc)
    writes = world.reconcile()
    assert uri("iris-predictor") == "gs://models/iris-v2"
    assert ("delete", "Deployment", "iris-predictor-canary") in writes
    assert weights() == [("iris-predictor", 100)]


def gateway_api() -> ClusterConfig:
    from dataclasses import replace

    return ClusterConfig(ingress=replace(ClusterConfig().ingress, enableGatewayApi=True))


def test_a_transformer_canary_splits_the_transformer_routes_and_leaves_the_predictor_alone() -> None:
    world = World(gateway_api())

    def refs(route: str, rule: int = 0) -> list[tuple[str, int]]:
        body = world.cache.get("gateway.networking.k8s.io/v1", "HTTPRoute", "ml", route)
        return [(r["name"], r.get("weight", 100)) for r in body["spec"]["rules"][rule]["backendRefs"]]

    def image(name: str) -> str:
        return world.deployment(name)["spec"]["template"]["spec"]["containers"][0]["image"]

    def transformer(tag: str, percent: int | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {"containers": [{"name": "kserve-container", "image": f"example.com/t:{tag}"}]}
        if percent is not None:
            spec["canaryTrafficPercent"] = percent
        return spec

    world.put(isvc(transformer=transformer("1")))
    world.reconcile()
    world.roll_out()
    world.roll_out("iris-transformer")
    world.reconcile()
    world.put(isvc(transformer=transformer("2", 30)))
    world.reconcile()
    world.roll_out("iris-transformer-canary")
    world.reconcile()
    world.reconcile()
    assert image("iris-transformer") == "example.com/t:1"
    assert image("iris-transformer-canary") == "example.com/t:2"
    assert refs("iris-transformer") == [("iris-transformer", 70), ("iris-transformer-canary", 30)]
    assert refs("iris") == [("iris-transformer", 70), ("iris-transformer-canary", 30)]  # the isvc's entry
    assert refs("iris-predictor") == [("iris-predictor", 100)]
    assert world.cache.get("apps/v1", "Deployment", "ml", "iris-predictor-canary") is None
    world.put(isvc(transformer=transformer("2")))  # promote
    writes = world.reconcile()
    assert image("iris-transformer") == "example.com/t:2"
    assert ("delete", "Deployment", "iris-transformer-canary") in writes


@pytest.mark.parametrize("routes", ["HTTPRoute", "Ingress"])
def test_tag_routing_gives_the_latest_and_the_previous_revision_their_own_hosts(routes: str) -> None:
    world = World(gateway_api() if routes == "HTTPRoute" else None)

    def backends() -> dict[str, str]:
        """host -> the Service it reaches"""
        if routes == "Ingress":
            ing = world.cache.get("networking.k8s.io/v1", "Ingress", "ml", "iris")
            return {r["host"]: r["http"]["paths"][0]["backend"]["service"]["name"] for r in ing["spec"]["rules"]}
        out = {}
        for name in ("latest-iris-predictor", "prev-iris-predictor"):
            route = world.cache.get("gateway.networking.k8s.io/v1", "HTTPRoute", "ml", name)
            if route is not None:
                (ref,) = route["spec"]["rules"][0]["backendRefs"]
                out[route["spec"]["hostnames"][0]] = ref["name"]
        return out

    tagged = isvc()
    tagged["metadata"]["annotations"]["serving.kserve.io/enable-tag-routing"] = "true"
    world.put(tagged)
    world.reconcile()
    world.roll_out()
    world.reconcile()
    assert backends().get("latest-iris-predictor-ml.example.com") == "iris-predictor"
    assert "prev-iris-predictor-ml.example.com" not in backends()
    canary = copy.deepcopy(tagged)
    canary["spec"]["predictor"]["model"]["storageUri"] = "gs://models/iris-v2"
    canary["spec"]["predictor"]["canaryTrafficPercent"] = 10
    world.put(canary)
    world.reconcile()
    world.roll_out("iris-predictor-canary")
    world.reconcile()
    world.reconcile()
    assert backends()["latest-iris-predictor-ml.example.com"] == "iris-predictor-canary"
    assert backends()["prev-iris-predictor-ml.example.com"] == "iris-predictor"
    traffic = world.status()["components"]["predictor"]["traffic"]
    assert {t["tag"]: t["url"] for t in traffic} == {
        "latest": "http://latest-iris-predictor-ml.example.com",
        "prev": "http://prev-iris-predictor-ml.example.com",
    }
    del canary["spec"]["predictor"]["canaryTrafficPercent"]  # promote: prev goes, latest is the stable one
    world.put(canary)
    world.reconcile()
    assert backends().get("latest-iris-predictor-ml.example.com") == "iris-predictor"
    assert "prev-iris-predictor-ml.example.com" not in backends()


def test_a_runtimes_shared_deployment_is_forgotten_when_its_last_model_mesh_isvc_goes(world: World) -> None:
    """ModelMesh isvcs share their runtime's deployment, an InferenceService the backend derives (no object of its
    own); once the last of them is deleted the backend holds nothing of it, however many come and go."""
    doc = isvc(mode="ModelMesh")
    world.put(doc)
    writes = world.reconcile()
    shared = "modelmesh-serving-mlserver-1-x-predictor"
    assert ("apply", "Deployment", shared) in writes
    assert world.backend._derived  # the shared deployment's InferenceService, kept while it has members
    world.cache.gone(doc)
    world.reconcile()
    assert world.backend._derived == {}
    world.put(doc)  # back again: the shared deployment is derived anew
    world.reconcile()
    assert world.backend._derived


def test_a_burst_of_model_mesh_events_is_one_pass_over_the_namespaces_mesh() -> None:
    """The operator queues every ModelMesh isvc's event (and its runtime deployment's) under one key per namespace:
    thirty created at once are one pass that serves them all, not thirty passes over all thirty; a Standard isvc
    keeps its own key."""
    from modelplane.backends.kubernetes.events import ISVC
    from modelplane.backends.kubernetes.operator import MESH_PASS, Operator

    world = World()
    operator = Operator(world.cache, world.controller, workers=1)
    names = [f"mm-{i}" for i in range(30)]
    for name in names:
        doc = isvc(mode="ModelMesh")
        doc["metadata"].update(name=name, uid=f"uid-{name}")
        operator.event(ISVC, doc, deleted=False)
    assert len(operator.queue) == 1
    standard = isvc()
    operator.event(ISVC, standard, deleted=False)
    assert len(operator.queue) == 2

    async def drain() -> list[tuple[str, str]]:
        keys = []
        while len(operator.queue):
            key, _ = await operator.queue.get()
            keys.append(key)
            await world.controller.reconcile(*key)
            operator.queue.done(key)
        return keys

    assert sorted(asyncio.run(drain())) == [("ml", "iris"), ("ml", MESH_PASS)]
    for name in names:  # every one of them decided by that single pass
        status = world.cache.get("serving.kserve.io/v1beta1", "InferenceService", "ml", name)["status"]
        assert status["modelStatus"]["states"]["activeModelState"] == "Standby"  # registered in the shared deployment
        assert status["components"]["predictor"]["activeModelId"].startswith(f"{name}__isvc-")
    shared = world.cache.get("apps/v1", "Deployment", "ml", "modelmesh-serving-mlserver-1-x-predictor")
    assert shared is not None and len(shared["metadata"]["ownerReferences"]) == 30
