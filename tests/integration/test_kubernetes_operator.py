"""Layer 2 of the Kubernetes backend's tests: the operator against a real kube-apiserver and controller-manager,
driven with the official `kubernetes` client as a user's tools would. Schema validation, the status subresource,
server-side apply, watches and owner-reference garbage collection are the API server's own; pods never run
(no kubelet), so tests mark pods Ready as a kubelet would, and write a Knative Service's status as Knative would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.kube import Cluster, OperatorProcess, install, start_cluster, start_operator, wait_for
from support.server import free_port

NS = "ml"
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
LABEL = "serving.kserve.io/inferenceservice"
WEBHOOK_ARGS = ("--webhook-port", str(free_port()))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from kubernetes import client

    running = start_cluster(tmp_path_factory.mktemp("kube"))
    try:
        install(running)
        client.CoreV1Api(running.client()).create_namespace({"metadata": {"name": NS}})
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    running = start_operator(cluster, tmp_path_factory.mktemp("operator-logs"), *WEBHOOK_ARGS, "--workers", "4")
    yield running
    running.stop()


class Api:
    def __init__(self, cluster: Cluster) -> None:
        from kubernetes import client

        api = cluster.client()
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.net = client.NetworkingV1Api(api)

    def create_isvc(self, name: str, uri: str = "gs://models/iris", **annotations: str) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "InferenceService",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri}}},
        }
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)

    def isvc(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)

    def patch_isvc(self, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name, patch)

    def condition(self, name: str, kind: str = "Ready") -> str | None:
        status = self.isvc(name).get("status") or {}
        return next((c["status"] for c in status.get("conditions", []) if c["type"] == kind), None)

    def deployment(self, name: str) -> Any:
        return self.apps.read_namespaced_deployment(name, NS)

    def available(self, name: str) -> None:
        """Plays the kubelet (there is none here): every pod of the Deployment is marked Running and Ready through
        the pod status subresource; the real ReplicaSet and Deployment controllers then make the Deployment
        Available and finish its rollout."""
        ready = {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": "True"},
                {"type": "Ready", "status": "True"},
            ],
        }

        def rolled_out() -> bool:
            for pod in self.core.list_namespaced_pod(NS, label_selector=f"app=isvc.{name}").items:
                if not any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []):
                    self.core.patch_namespaced_pod_status(pod.metadata.name, NS, {"status": ready})
            d = self.deployment(name)
            s = d.status
            return (s.observed_generation or 0) >= d.metadata.generation and (s.updated_replicas or 0) == (
                s.replicas or 0
            ) == (s.available_replicas or 0) >= 1

        wait_for(rolled_out, f"the Deployment {name} rolled out", interval=0.5)

    def revisions(self, isvc: str) -> list[str]:
        found = self.apps.list_namespaced_controller_revision(NS, label_selector=f"{LABEL}={isvc}")
        return sorted(r.metadata.name for r in found.items)

    def hpa(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object("autoscaling", "v2beta2", NS, "horizontalpodautoscalers", name)


@pytest.fixture(scope="module")
def api(cluster: Cluster) -> Api:
    return Api(cluster)


def test_an_isvc_becomes_kserves_objects_then_ready_then_garbage(api: Api, operator: OperatorProcess) -> None:
    created = api.create_isvc("iris", **{"serving.kserve.io/deploymentMode": "Standard"})
    uid = created["metadata"]["uid"]
    deployment = wait_for(lambda: api.deployment("iris-predictor"), "the predictor Deployment")
    assert deployment.metadata.owner_references[0].uid == uid
    assert deployment.spec.selector.match_labels == {"app": "isvc.iris-predictor"}
    init = deployment.spec.template.spec.init_containers[0]
    assert (init.name, init.args) == ("storage-initializer", ["gs://models/iris", "/mnt/models"])
    service = wait_for(lambda: api.core.read_namespaced_service("iris-predictor", NS), "the Service")
    assert service.spec.ports[0].port == 80 and service.metadata.owner_references[0].uid == uid
    hpa = wait_for(
        lambda: api.hpa("iris-predictor"), "the HPA"
    )  # Kubernetes 1.20 serves autoscaling/v2beta2, not v2: found by discovery
    assert hpa["spec"]["scaleTargetRef"]["name"] == "iris-predictor"
    ingress = wait_for(lambda: api.net.read_namespaced_ingress("iris", NS), "the Ingress")
    assert ingress.spec.rules[0].host == "iris-ml.example.com"
    assert api.revisions("iris") == ["iris-predictor-00001"]
    wait_for(lambda: api.condition("iris") == "False", "a not-ready status")

    api.available("iris-predictor")
    wait_for(lambda: api.condition("iris") == "True", "Ready once the Deployment is available")
    status = api.isvc("iris")["status"]
    assert status["url"] == "http://iris-ml.example.com"
    assert status["address"]["url"] == "http://iris-predictor.ml.svc.cluster.local"
    assert {c["type"] for c in status["conditions"]} >= {"PredictorReady", "IngressReady", "Ready"}

    api.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "iris")

    def collected() -> bool:  # the controller-manager's garbage collector follows the owner references
        left = api.apps.list_namespaced_deployment(NS, label_selector=f"{LABEL}=iris").items
        left += api.core.list_namespaced_service(NS, label_selector=f"{LABEL}=iris").items
        return not left and not api.revisions("iris")

    wait_for(collected, "the isvc's objects garbage-collected")


def test_steady_state_writes_nothing(api: Api, operator: OperatorProcess) -> None:
    """After an isvc is Ready, an event that changes nothing the operator owns (someone labels its Deployment)
    makes it reconcile and write nothing: the isvc and its objects keep their resourceVersions."""
    api.create_isvc("quiet", **{"serving.kserve.io/deploymentMode": "Standard"})
    wait_for(lambda: api.deployment("quiet-predictor"), "the Deployment")
    api.available("quiet-predictor")
    wait_for(lambda: api.condition("quiet") == "True", "Ready")
    isvc_version = api.isvc("quiet")["metadata"]["resourceVersion"]
    service_version = api.core.read_namespaced_service("quiet-predictor", NS).metadata.resource_version
    marker = f"reconciled {NS}/quiet"
    seen = operator.log().count(marker)
    api.apps.patch_namespaced_deployment("quiet-predictor", NS, {"metadata": {"labels": {"team": "fraud"}}})
    wait_for(lambda: operator.log().count(marker) > seen, "the operator to reconcile after the event")
    assert operator.log().rsplit(marker, 1)[1].startswith(": 0 writes")
    assert api.isvc("quiet")["metadata"]["resourceVersion"] == isvc_version
    assert api.core.read_namespaced_service("quiet-predictor", NS).metadata.resource_version == service_version


def test_a_restart_mid_rollout_continues_without_duplicates(
    api: Api, cluster: Cluster, operator: OperatorProcess, tmp_path: Path
) -> None:
    api.create_isvc("roll", **{"serving.kserve.io/deploymentMode": "Standard"})
    wait_for(lambda: api.deployment("roll-predictor"), "the Deployment")
    api.available("roll-predictor")
    wait_for(lambda: api.condition("roll") == "True", "Ready")
    api.patch_isvc("roll", {"spec": {"predictor": {"model": {"storageUri": "gs://models/iris-v2"}}}})
    wait_for(lambda: api.revisions("roll") == ["roll-predictor-00001", "roll-predictor-00002"], "a second revision")
    operator.stop()  # mid-rollout: the new pods are not available yet
    second = start_operator(cluster, tmp_path, *WEBHOOK_ARGS)
    try:
        api.available("roll-predictor")
        wait_for(
            lambda: (
                api.isvc("roll")["status"]["components"]["predictor"].get("latestReadyRevision")
                == "roll-predictor-00002"
            ),
            "the rollout to finish under the restarted operator",
        )
        assert api.revisions("roll") == ["roll-predictor-00001", "roll-predictor-00002"]
        deployments = api.apps.list_namespaced_deployment(NS, label_selector=f"{LABEL}=roll").items
        assert [d.metadata.name for d in deployments] == ["roll-predictor"]
        init = deployments[0].spec.template.spec.init_containers[0]
        assert init.args[0] == "gs://models/iris-v2"
    finally:  # the restarted operator serves the rest of the module; its fixture stops it
        operator.proc, operator.log_path = second.proc, second.log_path


def test_knative_mode_renders_a_knative_service_and_follows_its_status(api: Api, operator: OperatorProcess) -> None:
    api.create_isvc("kn")  # Knative is the default mode
    ksvc = wait_for(
        lambda: api.custom.get_namespaced_custom_object("serving.knative.dev", "v1", NS, "services", "kn-predictor"),
        "the Knative Service",
    )
    assert ksvc["spec"]["template"]["metadata"]["name"] == "kn-predictor-00001"
    vs = api.custom.get_namespaced_custom_object("networking.istio.io", "v1beta1", NS, "virtualservices", "kn")
    assert vs["spec"]["hosts"][0] == "kn.ml.example.com"
    status = {"latestCreatedRevisionName": "kn-predictor-00001", "latestReadyRevisionName": "kn-predictor-00001"}
    api.custom.patch_namespaced_custom_object_status(
        "serving.knative.dev", "v1", NS, "services", "kn-predictor", {"status": status}
    )
    wait_for(lambda: api.condition("kn") == "True", "Ready from the Knative Service's status")
    assert api.isvc("kn")["status"]["url"] == "http://kn.ml.example.com"


def test_the_admission_webhooks_default_and_refuse_with_kserves_messages(api: Api, operator: OperatorProcess) -> None:
    """The API server calls the operator's webhooks: a legacy `sklearn:` predictor is stored as `model:`, and an
    invalid InferenceService — or a ClusterServingRuntime competing with an installed one at the same priority — is
    refused with KServe's message, as `kubectl apply` would show it."""
    from kubernetes.client.exceptions import ApiException

    legacy = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": "legacy"},
        "spec": {"predictor": {"sklearn": {"storageUri": "gs://models/iris"}}},
    }
    wait_for(lambda: api.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, legacy), "the webhooks")
    stored = api.isvc("legacy")["spec"]["predictor"]
    assert "sklearn" not in stored
    assert stored["model"] == {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://models/iris"}
    invalid = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": "invalid"},
        "spec": {"predictor": {"minReplicas": 3, "maxReplicas": 1, "sklearn": {"storageUri": "gs://models/iris"}}},
    }
    with pytest.raises(ApiException) as refused:
        api.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, invalid)
    assert "MinReplicas cannot be greater than MaxReplicas." in refused.value.body
    assert "denied the request" in refused.value.body
    clashing = {  # sklearn v1 at priority 1 for v1/v2, as the installed kserve-sklearnserver
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "ClusterServingRuntime",
        "metadata": {"name": "my-sklearn"},
        "spec": {
            "supportedModelFormats": [{"name": "sklearn", "version": "1", "autoSelect": True, "priority": 1}],
            "protocolVersions": ["v2"],
            "containers": [{"name": "kserve-container", "image": "example.com/sk:1"}],
        },
    }
    with pytest.raises(ApiException) as refused:
        api.custom.create_cluster_custom_object(GROUP, "v1alpha1", "clusterservingruntimes", clashing)
    assert (
        "same priority assigned for the model format sklearn in the clusterservingruntimes kserve-sklearnserver "
        "and my-sklearn" in refused.value.body
    )
    clashing["spec"]["supportedModelFormats"][0]["priority"] = 2
    api.custom.create_cluster_custom_object(GROUP, "v1alpha1", "clusterservingruntimes", clashing)
    api.custom.delete_cluster_custom_object(GROUP, "v1alpha1", "clusterservingruntimes", "my-sklearn")


def test_kserves_sample_manifests_go_through_unchanged(api: Api, operator: OperatorProcess) -> None:
    """Every sample under tests/data/kserve is created as written (runtimes first), each file in a namespace of
    its own (several use the same name); each InferenceService gets its predictor object — a Deployment in
    Standard mode, a Knative Service in Knative mode — and a status."""
    import yaml

    samples = sorted((Path(__file__).parents[1] / "data" / "kserve").glob("*.yaml"))
    isvcs: list[tuple[str, dict[str, Any]]] = []
    for i, path in enumerate(samples):
        ns = f"sample-{i}"
        api.core.create_namespace({"metadata": {"name": ns}})
        docs = sorted(
            (d for d in yaml.safe_load_all(path.read_text()) if d), key=lambda d: d["kind"] == "InferenceService"
        )
        for doc in docs:
            group, version = doc["apiVersion"].split("/")
            plural = {"InferenceService": PLURAL, "ServingRuntime": "servingruntimes"}[doc["kind"]]
            api.custom.create_namespaced_custom_object(group, version, ns, plural, doc)
            if doc["kind"] == "InferenceService":
                isvcs.append((ns, doc))
    assert len(isvcs) >= 8
    for ns, doc in isvcs:
        name = doc["metadata"]["name"]
        mode = (doc["metadata"].get("annotations") or {}).get("serving.kserve.io/deploymentMode", "Knative")
        if mode in ("Standard", "RawDeployment"):
            wait_for(lambda ns=ns, name=name: api.apps.read_namespaced_deployment(f"{name}-predictor", ns), name)
        else:
            wait_for(
                lambda ns=ns, name=name: api.custom.get_namespaced_custom_object(
                    "serving.knative.dev", "v1", ns, "services", f"{name}-predictor"
                ),
                f"{ns}/{name}'s Knative Service",
            )
        wait_for(
            lambda ns=ns, name=name: (
                api.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
                .get("status", {})
                .get("conditions")
            ),
            f"{ns}/{name}'s status",
        )


def test_a_knative_canary_is_split_rolled_back_and_promoted(api: Api, operator: OperatorProcess) -> None:
    ksvc_api = ("serving.knative.dev", "v1", NS, "services", "can-predictor")

    def ksvc() -> dict[str, Any]:
        return api.custom.get_namespaced_custom_object(*ksvc_api)

    def knative_reports(ready: str) -> None:  # what Knative's controllers would write
        status = {"latestCreatedRevisionName": ready, "latestReadyRevisionName": ready}
        api.custom.patch_namespaced_custom_object_status(*ksvc_api, {"status": status})

    api.create_isvc("can")
    wait_for(ksvc, "the Knative Service")
    knative_reports("can-predictor-00001")
    wait_for(lambda: api.condition("can") == "True", "Ready")
    patch = {"spec": {"predictor": {"canaryTrafficPercent": 20, "model": {"storageUri": "gs://models/iris-v2"}}}}
    api.patch_isvc("can", patch)
    wait_for(lambda: ksvc()["spec"]["template"]["metadata"]["name"] == "can-predictor-00002", "the canary revision")
    split = [
        {"latestRevision": True, "percent": 20},
        {"revisionName": "can-predictor-00001", "percent": 80, "tag": "prev"},
    ]
    wait_for(lambda: ksvc()["spec"]["traffic"] == split, "20/80 between the latest ready revision and the previous")
    knative_reports("can-predictor-00002")
    wait_for(
        lambda: (
            api.isvc("can")["status"]["components"]["predictor"].get("latestReadyRevision") == "can-predictor-00002"
        ),
        "the canary ready",
    )
    api.patch_isvc("can", {"spec": {"predictor": {"canaryTrafficPercent": 0}}})  # roll back
    rolled_back = [
        {"latestRevision": True, "percent": 0},
        {"revisionName": "can-predictor-00001", "percent": 100, "tag": "prev"},
    ]
    wait_for(lambda: ksvc()["spec"]["traffic"] == rolled_back, "all traffic back on the previous revision")
    api.patch_isvc("can", {"spec": {"predictor": {"canaryTrafficPercent": None}}})  # promote
    wait_for(lambda: ksvc()["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}], "the canary promoted")


def test_a_standard_canary_weighs_gateway_api_routes(
    api: Api, cluster: Cluster, operator: OperatorProcess, tmp_path: Path
) -> None:
    """With Gateway API routing (KServe's inferenceservice-config, read at start), a Standard-mode canary runs in
    its own Deployment beside the stable one and the HTTPRoute weighs their Services, with tag routing the
    `latest-`/`prev-` routes reach each one alone; promotion rolls the stable Deployment to the new revision and
    removes the canary and the `prev-` route."""
    import json

    api.core.create_namespace({"metadata": {"name": "gw-config"}})
    config = {
        "metadata": {"name": "inferenceservice-config"},
        "data": {"ingress": json.dumps({"enableGatewayApi": True})},
    }
    api.core.create_namespaced_config_map("gw-config", config)
    operator.stop()
    gateway = start_operator(cluster, tmp_path, *WEBHOOK_ARGS, "--config-namespace", "gw-config")
    operator.proc, operator.log_path = gateway.proc, gateway.log_path  # the module fixture stops it

    def weights() -> list[tuple[str, int]]:
        route = api.custom.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", NS, "httproutes", "cny-predictor"
        )
        return [(r["name"], r["weight"]) for r in route["spec"]["rules"][0]["backendRefs"]]  # the CRD defaults 1

    def storage(name: str) -> str:
        return api.deployment(name).spec.template.spec.init_containers[0].args[0]

    def tagged() -> dict[str, str]:
        routes = api.custom.list_namespaced_custom_object("gateway.networking.k8s.io", "v1", NS, "httproutes")
        return {
            r["metadata"]["name"]: r["spec"]["rules"][0]["backendRefs"][0]["name"]
            for r in routes["items"]
            if r["metadata"]["name"].startswith(("latest-cny", "prev-cny"))
        }

    tags = {"serving.kserve.io/enable-tag-routing": "true"}
    api.create_isvc("cny", **{"serving.kserve.io/deploymentMode": "Standard"}, **tags)
    wait_for(lambda: api.deployment("cny-predictor"), "the Deployment")
    api.available("cny-predictor")
    wait_for(lambda: api.condition("cny") == "True", "Ready")
    assert wait_for(weights, "the HTTPRoute") == [("cny-predictor", 1)]  # one backend: Gateway API's default
    patch = {"spec": {"predictor": {"canaryTrafficPercent": 20, "model": {"storageUri": "gs://models/iris-v2"}}}}
    api.patch_isvc("cny", patch)
    wait_for(lambda: api.deployment("cny-predictor-canary"), "the canary Deployment")
    assert storage("cny-predictor") == "gs://models/iris" and storage("cny-predictor-canary") == "gs://models/iris-v2"
    api.available("cny-predictor-canary")
    wait_for(lambda: weights() == [("cny-predictor", 80), ("cny-predictor-canary", 20)], "an 80/20 split")
    assert tagged() == {"latest-cny-predictor": "cny-predictor-canary", "prev-cny-predictor": "cny-predictor"}
    api.patch_isvc("cny", {"spec": {"predictor": {"canaryTrafficPercent": None}}})  # promote
    wait_for(lambda: weights() == [("cny-predictor", 1)], "all traffic on the stable route")
    assert storage("cny-predictor") == "gs://models/iris-v2"
    wait_for(lambda: tagged() == {"latest-cny-predictor": "cny-predictor"}, "the prev- route removed")

    def canary_gone() -> bool:
        return not any(d.metadata.name == "cny-predictor-canary" for d in api.apps.list_namespaced_deployment(NS).items)

    wait_for(canary_gone, "the canary Deployment removed")


def test_keda_autoscaling_and_a_cluster_local_isvc(api: Api, operator: OperatorProcess) -> None:
    """`serving.kserve.io/autoscalerClass: keda` renders a KEDA ScaledObject instead of an HPA; a cluster-local
    InferenceService gets no external route."""
    api.create_isvc(
        "scaled",
        **{"serving.kserve.io/deploymentMode": "Standard", "serving.kserve.io/autoscalerClass": "keda"},
    )
    scaled = wait_for(
        lambda: api.custom.get_namespaced_custom_object("keda.sh", "v1alpha1", NS, "scaledobjects", "scaled-predictor"),
        "the ScaledObject",
    )
    assert scaled["spec"]["scaleTargetRef"]["name"] == "scaled-predictor"
    hpas = api.custom.list_namespaced_custom_object("autoscaling", "v2beta2", NS, "horizontalpodautoscalers")
    assert "scaled-predictor" not in {h["metadata"]["name"] for h in hpas["items"]}
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {
            "name": "inside",
            "labels": {"networking.kserve.io/visibility": "cluster-local"},
            "annotations": {"serving.kserve.io/deploymentMode": "Standard"},
        },
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://models/iris"}}},
    }
    api.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)
    wait_for(lambda: api.isvc("inside").get("status", {}).get("conditions"), "a status")
    assert api.deployment("inside-predictor") is not None
    routes = api.custom.list_namespaced_custom_object("gateway.networking.k8s.io", "v1", NS, "httproutes")["items"]
    ingresses = api.net.list_namespaced_ingress(NS).items
    assert "inside" not in {r["metadata"]["name"] for r in routes} | {i.metadata.name for i in ingresses}


def test_trained_models_fill_their_inference_services_model_list(api: Api, operator: OperatorProcess) -> None:
    """KServe's multi-model serving on a cluster: a predictor with no storageUri gets the model list ConfigMap
    (modelconfig-<isvc>-0) and the puller sidecar; each TrainedModel is an entry in that list (removed when it is
    deleted), has KServe's status (memory admission, the parent's readiness, its URL once the parent is Ready), is
    refused by the webhook as KServe's is, and is deleted with its InferenceService."""
    import json

    from kubernetes.client.rest import ApiException

    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": "mms", "annotations": {"serving.kserve.io/deploymentMode": "Standard"}},
        "spec": {"predictor": {"sklearn": {"protocolVersion": "v1", "resources": {"limits": {"memory": "64Mi"}}}}},
    }
    api.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)

    def trained(name: str, uri: str, memory: str = "16Mi", parent: str = "mms") -> dict[str, Any]:
        spec = {"inferenceService": parent, "model": {"storageUri": uri, "framework": "sklearn", "memory": memory}}
        doc = {"apiVersion": f"{GROUP}/v1alpha1", "kind": "TrainedModel", "metadata": {"name": name}, "spec": spec}
        return api.custom.create_namespaced_custom_object(GROUP, "v1alpha1", NS, "trainedmodels", doc)

    def tm(name: str) -> dict[str, Any]:
        return api.custom.get_namespaced_custom_object(GROUP, "v1alpha1", NS, "trainedmodels", name)

    def tm_condition(name: str, kind: str) -> str | None:
        return next((c["status"] for c in tm(name).get("status", {}).get("conditions", []) if c["type"] == kind), None)

    def listed() -> list[str]:
        data = api.core.read_namespaced_config_map("modelconfig-mms-0", NS).data or {}
        return [m["modelName"] for m in json.loads(data.get("models.json", "[]"))]

    deployment = wait_for(lambda: api.deployment("mms-predictor"), "the multi-model predictor's Deployment")
    pod = deployment.spec.template.spec
    agent = next(c for c in pod.containers if c.name == "agent")
    assert agent.command == ["modelplane", "puller"] and "/mnt/configs" in agent.args
    assert any(v.config_map and v.config_map.name == "modelconfig-mms-0" for v in pod.volumes)
    assert "--model-cache-bytes=67108864" in pod.containers[0].args
    wait_for(lambda: listed() == [], "the empty model list")

    trained("tm-a", "gs://models/a")
    trained("tm-b", "s3://models/b")
    trained("tm-big", "gs://models/big", memory="1Gi")
    wait_for(lambda: listed() == ["tm-a", "tm-b", "tm-big"], "every TrainedModel in the model list")
    entry = json.loads(api.core.read_namespaced_config_map("modelconfig-mms-0", NS).data["models.json"])[0]
    assert entry == {
        "modelName": "tm-a",
        "modelSpec": {"storageUri": "gs://models/a", "framework": "sklearn", "memory": "16Mi"},
    }
    wait_for(lambda: tm_condition("tm-big", "MemoryResourceAvailable") == "False", "tm-big over the memory limit")
    assert tm_condition("tm-a", "MemoryResourceAvailable") == "True"
    assert tm_condition("tm-a", "IsMMSPredictor") == "True" and tm_condition("tm-a", "Ready") == "False"

    api.available("mms-predictor")
    wait_for(lambda: tm_condition("tm-a", "Ready") == "True", "tm-a Ready once its InferenceService is")
    assert tm("tm-a")["status"]["url"] == "http://mms-ml.example.com/v1/models/tm-a:predict"

    with pytest.raises(ApiException) as refused:
        trained("bad.name", "gs://models/a")
    assert refused.value.status in (400, 422) and "[a-zA-Z0-9_-]+" in refused.value.body

    api.custom.delete_namespaced_custom_object(GROUP, "v1alpha1", NS, "trainedmodels", "tm-b")
    wait_for(lambda: listed() == ["tm-a", "tm-big"], "tm-b out of the model list")

    trained("tm-orphan", "gs://models/o", parent="no-such-isvc")
    api.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "mms")

    def gone(name: str) -> bool:
        try:
            tm(name)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(lambda: gone("tm-a") and gone("tm-big"), "the TrainedModels deleted with their InferenceService")
    wait_for(lambda: gone("tm-orphan"), "a TrainedModel of no InferenceService deleted")


def test_model_mesh_isvcs_share_their_runtimes_deployment(api: Api, operator: OperatorProcess) -> None:
    """deploymentMode: ModelMesh on a cluster: the InferenceServices a multi-model runtime serves share one
    Deployment (modelmesh-serving-<runtime>-predictor, podsPerRuntime replicas, the puller beside the server) owned
    by all of them; its model list names each by its vmodel with its current storageUri; their status is
    modelmesh-serving's; a spec change updates the list (the puller swaps it in place); the deployment goes with the
    last of them, and one no multi-model runtime serves says why."""
    import json

    def create(name: str, uri: str, fmt: str = "sklearn") -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "InferenceService",
            "metadata": {"name": name, "annotations": {"serving.kserve.io/deploymentMode": "ModelMesh"}},
            "spec": {"predictor": {"model": {"modelFormat": {"name": fmt}, "storageUri": uri}}},
        }
        api.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)

    from kubernetes.client.rest import ApiException

    shared = "modelmesh-serving-mlserver-1-x"

    def listed() -> dict[str, str]:
        data = api.core.read_namespaced_config_map(f"modelconfig-{shared}-0", NS).data or {}
        return {m["modelName"]: m["modelSpec"]["storageUri"] for m in json.loads(data.get("models.json", "[]"))}

    def model_status(name: str) -> dict[str, Any]:
        return (api.isvc(name).get("status") or {}).get("modelStatus") or {}

    create("mm-a", "gs://models/a")
    create("mm-b", "s3://models/b")
    deployment = wait_for(lambda: api.deployment(f"{shared}-predictor"), "the runtime's shared Deployment")
    assert deployment.spec.replicas == 2
    assert {c.name for c in deployment.spec.template.spec.containers} == {"kserve-container", "agent"}
    wait_for(lambda: listed() == {"mm-a": "gs://models/a", "mm-b": "s3://models/b"}, "both models in its list")
    owners = wait_for(
        lambda: (refs := api.deployment(f"{shared}-predictor").metadata.owner_references) and len(refs) == 2 and refs,
        "both InferenceServices owning it",
    )
    assert sorted(r.name for r in owners) == ["mm-a", "mm-b"] and not any(r.controller for r in owners)
    with pytest.raises(ApiException) as missing:
        api.deployment("mm-a-predictor")
    assert missing.value.status == 404  # no Deployment of its own
    wait_for(lambda: model_status("mm-a").get("states", {}).get("activeModelState") == "Standby", "registered")
    assert api.condition("mm-a") == "False"  # the runtime's deployment has no ready pod yet

    api.available(f"{shared}-predictor")
    wait_for(lambda: api.condition("mm-a") == "True", "mm-a Ready once its runtime's deployment is available")
    status = api.isvc("mm-a")["status"]
    assert status["deploymentMode"] == "ModelMesh"
    assert status["modelStatus"]["states"]["activeModelState"] == "Loaded"
    assert status["modelStatus"]["copies"]["totalCopies"] == 2
    predictor = status["components"]["predictor"]
    assert predictor["restUrl"] == f"http://{shared}-predictor.{NS}.svc.cluster.local"
    assert predictor["grpcUrl"].startswith(f"grpc://{shared}-predictor.{NS}")
    first = predictor["activeModelId"]

    api.patch_isvc("mm-a", {"spec": {"predictor": {"model": {"storageUri": "gs://models/a2"}}}})
    wait_for(lambda: listed().get("mm-a") == "gs://models/a2", "the new storageUri in the list")
    wait_for(
        lambda: api.isvc("mm-a")["status"]["components"]["predictor"]["activeModelId"] not in (first, None),
        "the vmodel on its new model",
    )

    create("mm-pmml", "gs://models/p", fmt="pmml")
    wait_for(
        lambda: model_status("mm-pmml").get("lastFailureInfo", {}).get("reason") == "NoSupportingRuntime",
        "no multi-model runtime serves pmml",
    )

    api.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "mm-b")
    wait_for(lambda: listed() == {"mm-a": "gs://models/a2"}, "mm-b out of the list")
    api.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "mm-a")

    def collected() -> bool:
        return not api.apps.list_namespaced_deployment(NS, label_selector=f"{LABEL}={shared}").items

    wait_for(collected, "the shared Deployment garbage-collected with its last InferenceService")
