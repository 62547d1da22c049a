"""What `modelplane render` and the operator produce for an InferenceService: KServe's names, labels, owner
references, pods (storage, agent, probes), autoscalers and routing, in Standard and Knative mode."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from modelplane.backends.kubernetes.config import ClusterConfig
from modelplane.backends.kubernetes.render import render
from modelplane.cli.main import app
from modelplane.control.api import InferenceService
from modelplane.control.runtimes import RuntimeResolutionError
from modelplane.control.webhook import ValidationError

DATA = Path(__file__).parents[1] / "data"
INPUTS = DATA / "render-inputs"


def isvcs(path: Path) -> dict[str, InferenceService]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == "InferenceService"]
    out = {d["metadata"]["name"]: InferenceService.model_validate(d) for d in docs}
    for isvc in out.values():
        isvc.metadata.uid = "uid-1"
    return out


def by_kind(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def pod_of(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = by_kind(objects)
    deployment = found.get(("Deployment", name))
    if deployment is not None:
        return deployment["spec"]["template"]["spec"]
    return found[("Service", name)]["spec"]["template"]["spec"]  # a Knative Service


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod["containers"] if c["name"] == name)


def test_standard_mode_objects_carry_kserves_names_labels_and_owner() -> None:
    isvc = isvcs(DATA / "kserve" / "sklearn-iris.yaml")["sklearn-iris"]
    objects = render(isvc, mode="Standard")
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert kinds == [
        ("Deployment", "sklearn-iris-predictor"),
        ("Service", "sklearn-iris-predictor"),
        ("HorizontalPodAutoscaler", "sklearn-iris-predictor"),
        ("Ingress", "sklearn-iris"),
    ]
    deployment, service, hpa, ingress = objects
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "isvc.sklearn-iris-predictor"}
    assert deployment["spec"]["template"]["metadata"]["labels"]["app"] == "isvc.sklearn-iris-predictor"
    assert deployment["metadata"]["labels"]["serving.kserve.io/inferenceservice"] == "sklearn-iris"
    assert deployment["metadata"]["labels"]["component"] == "predictor"
    assert "replicas" not in deployment["spec"]  # the HPA owns it
    assert service["spec"]["selector"] == {"app": "isvc.sklearn-iris-predictor"}
    assert service["spec"]["ports"][0] == {"name": "http1", "protocol": "TCP", "port": 80, "targetPort": 8080}
    assert hpa["spec"]["scaleTargetRef"]["name"] == "sklearn-iris-predictor"
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
    hosts = [r["host"] for r in ingress["spec"]["rules"]]
    assert hosts == ["sklearn-iris-default.example.com", "sklearn-iris-predictor-default.example.com"]
    for obj in objects:
        (ref,) = obj["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "InferenceService",
            "sklearn-iris",
            "uid-1",
            True,
        )
    server = container(deployment["spec"]["template"]["spec"], "kserve-container")
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert {"name": "INFERENCE_SERVICE_NAME", "value": "sklearn-iris"} in server["env"]
    assert "--model_name=sklearn-iris" in server["args"]


def test_storage_uri_becomes_an_init_container_a_pvc_mount_or_a_modelcar() -> None:
    found = isvcs(INPUTS / "storage-variants.yaml")
    s3 = pod_of(render(found["iris-s3"], mode="Standard"), "iris-s3-predictor")
    (init,) = s3["initContainers"]
    assert init["name"] == "storage-initializer"
    assert init["command"] == ["modelplane", "storage-initializer"]
    assert init["args"] == ["s3://models/iris/xgb", "/mnt/models"]
    assert s3["serviceAccountName"] == "s3-reader" and s3["nodeSelector"] == {"pool": "cpu"}
    assert container(s3, "kserve-container")["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}

    pvc = pod_of(render(found["iris-pvc"], mode="Standard"), "iris-pvc-predictor")
    assert "initContainers" not in pvc
    assert {"name": "kserve-pvc-source", "persistentVolumeClaim": {"claimName": "model-store", "readOnly": True}} in (
        pvc["volumes"]
    )
    mount = container(pvc, "kserve-container")["volumeMounts"][0]
    assert (mount["mountPath"], mount["subPath"], mount["readOnly"]) == ("/mnt/models", "iris/v1", True)

    oci = pod_of(render(found["iris-oci"], mode="Standard"), "iris-oci-predictor")
    assert oci["shareProcessNamespace"] is True
    assert container(oci, "modelcar")["image"] == "registry.example.com/models/iris:1.0"
    assert [c["name"] for c in oci["initContainers"]] == ["modelcar-init"]


def test_logger_and_batcher_are_server_flags_for_modelplane_and_an_agent_in_front_of_others() -> None:
    found = isvcs(INPUTS / "logger-batcher.yaml")
    ours = render(found["iris-logged"], mode="Standard")
    pod = pod_of(ours, "iris-logged-predictor")
    assert [c["name"] for c in pod["containers"]] == ["kserve-container"]
    args = container(pod, "kserve-container")["args"]
    assert args[args.index("--log-url") + 1] == "http://message-dumper.default/"
    assert args[args.index("--max-batch-size") + 1] == "16"

    theirs = render(found["custom-logged"], mode="Standard")
    pod = pod_of(theirs, "custom-logged-predictor")
    agent = container(pod, "agent")
    assert agent["command"] == ["modelplane", "serve"]
    assert agent["args"][agent["args"].index("--predictor_host") + 1] == "127.0.0.1:9000"
    assert agent["args"][agent["args"].index("--log-url") + 1] == "http://message-dumper.default/"
    service = by_kind(theirs)[("Service", "custom-logged-predictor")]
    assert service["spec"]["ports"][0]["targetPort"] == 9081  # requests go through the agent


def test_autoscaler_classes_and_fixed_replicas() -> None:
    found = isvcs(INPUTS / "autoscaling-explainer.yaml")
    keda = by_kind(render(found["iris-keda"], mode="Standard"))
    scaled = keda[("ScaledObject", "iris-keda-predictor")]["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (2, 6)
    assert scaled["triggers"] == [{"type": "memory", "metricType": "Utilization", "metadata": {"value": "70"}}]
    assert not any(kind == "HorizontalPodAutoscaler" for kind, _ in keda)

    fixed = by_kind(render(found["iris-fixed"], mode="Standard"))
    assert fixed[("Deployment", "iris-fixed-predictor")]["spec"]["replicas"] == 3
    assert not any(kind in ("HorizontalPodAutoscaler", "ScaledObject") for kind, _ in fixed)

    old = by_kind(render(found["iris-keda"].model_copy(deep=True), ClusterConfig(hpa_version="v2beta2")))
    assert not any(o["apiVersion"] == "autoscaling/v2" for o in old.values())


def test_transformer_and_explainer_routing_in_both_modes() -> None:
    isvc = isvcs(INPUTS / "autoscaling-explainer.yaml")["iris-explained"]
    gateway = ClusterConfig(ingress=replace(ClusterConfig().ingress, enableGatewayApi=True))
    objects = by_kind(render(isvc, gateway, mode="Standard"))
    transformer = container(
        objects[("Deployment", "iris-explained-transformer")]["spec"]["template"]["spec"], "kserve-container"
    )
    assert "--predictor_host=iris-explained-predictor.default" in transformer["args"]
    top = objects[("HTTPRoute", "iris-explained")]["spec"]["rules"]
    assert top[0]["matches"][0]["path"]["value"] == r"^/v1/models/[\w-]+:explain$"
    assert top[0]["backendRefs"][0]["name"] == "iris-explained-explainer"
    assert top[1]["backendRefs"][0]["name"] == "iris-explained-transformer"  # the entry component

    knative = by_kind(render(isvc, mode="Knative"))
    assert {name for kind, name in knative if kind == "Service"} == {
        "iris-explained-predictor",
        "iris-explained-transformer",
        "iris-explained-explainer",
        "iris-explained",  # the ExternalName service
    }
    vs = knative[("VirtualService", "iris-explained")]["spec"]
    assert vs["hosts"] == ["iris-explained.default.example.com", "iris-explained.default.svc.cluster.local"]
    explain, rest = vs["http"]
    assert (
        explain["route"][0]["headers"]["request"]["set"]["Host"] == "iris-explained-explainer.default.svc.cluster.local"
    )
    assert (
        rest["route"][0]["headers"]["request"]["set"]["Host"] == "iris-explained-transformer.default.svc.cluster.local"
    )


def test_knative_service_template_annotations_and_traffic() -> None:
    isvc = isvcs(DATA / "kserve" / "sklearn-iris-scale-to-zero.yaml")
    (isvc,) = isvc.values()
    (ksvc, *_) = render(isvc, mode="Knative")
    template = ksvc["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/class"] == "kpa.autoscaling.knative.dev"
    assert annotations["autoscaling.knative.dev/min-scale"] == str(isvc.spec.predictor.min_replicas)
    assert "dnsPolicy" not in template["spec"]  # Knative's webhook refuses the API server's pod defaults
    assert len(template["spec"]["containers"][0]["ports"]) == 1  # one port per Knative revision
    assert ksvc["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]
    traffic = [{"revisionName": "a-00002", "percent": 10, "tag": "latest"}, {"revisionName": "a-00001", "percent": 90}]
    (ksvc, *_) = render(isvc, mode="Knative", traffic={"predictor": traffic})
    assert ksvc["spec"]["traffic"] == traffic


def test_refusals_carry_kserves_messages() -> None:
    isvc = isvcs(DATA / "kserve" / "sklearn-iris.yaml")["sklearn-iris"]
    bad = isvc.model_copy(deep=True)
    bad.metadata.name = "Bad_Name"
    with pytest.raises(ValidationError, match="Bad_Name"):
        render(bad)
    unknown = isvc.model_copy(deep=True)
    assert unknown.spec.predictor.model is not None
    unknown.spec.predictor.model.model_format.name = "no-such-format"
    with pytest.raises(RuntimeResolutionError):
        render(unknown)


def test_cli_render_yaml_json_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    sample = str(DATA / "kserve" / "sklearn-iris-transformer.yaml")
    result = runner.invoke(app, ["render", "-f", sample, "--mode", "Standard"])
    assert result.exit_code == 0, result.output
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout) if d]
    assert kinds.count("Deployment") == 2 and "Ingress" in kinds
    result = runner.invoke(app, ["render", "-f", sample, "-o", "json", "--gateway-api"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert listed["kind"] == "List" and any(
        i["kind"] == "VirtualService" for i in listed["items"]
    )  # Knative: the default mode
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: x}\nspec: {}\n")
    result = runner.invoke(app, ["render", "-f", str(broken)])
    assert result.exit_code == 1 and "error:" in result.output
    result = runner.invoke(app, ["render", "-f", sample, "--mode", "Sideways"])
    assert result.exit_code == 1 and "mode must be one of" in result.output


def test_cli_render_routes_the_latest_tag_host_when_tag_routing_is_on(tmp_path: Path) -> None:
    doc = yaml.safe_load((DATA / "kserve" / "sklearn-iris-transformer.yaml").read_text())
    doc["metadata"].setdefault("annotations", {})["serving.kserve.io/enable-tag-routing"] = "true"
    manifest = tmp_path / "tagged.yaml"
    manifest.write_text(yaml.safe_dump(doc))
    name = doc["metadata"]["name"]
    runner = CliRunner()
    result = runner.invoke(app, ["render", "-f", str(manifest), "--mode", "Standard", "--gateway-api"])
    assert result.exit_code == 0, result.output
    routes = {d["metadata"]["name"]: d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "HTTPRoute"}
    for component in ("predictor", "transformer"):
        tagged = routes[f"latest-{name}-{component}"]
        assert tagged["spec"]["hostnames"] == [f"latest-{name}-{component}-default.example.com"]
        assert tagged["spec"]["rules"][0]["backendRefs"][0]["name"] == f"{name}-{component}"
    assert not any(n.startswith("prev-") for n in routes)  # no canary, no previous revision
    result = runner.invoke(app, ["render", "-f", str(manifest), "--mode", "Standard"])
    (ingress,) = [d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "Ingress"]
    assert f"latest-{name}-predictor-default.example.com" in [r["host"] for r in ingress["spec"]["rules"]]


def test_a_cluster_runtime_of_a_built_in_name_replaces_the_built_in() -> None:
    """On a cluster, `config/` installs the built-in ClusterServingRuntimes and a user may swap one's image:
    the installed one is used, not modelplane's built-in of the same name."""
    from modelplane.control.api import ServingRuntime
    from modelplane.control.runtimes import builtin_runtimes, with_builtins

    theirs = builtin_runtimes()[0].model_copy(deep=True)  # kserve-sklearnserver
    theirs.spec.containers[0].image = "kserve/sklearnserver:v0.21.0"
    runtimes = with_builtins([ServingRuntime.model_validate(theirs.dump())])
    assert [rt.metadata.name for rt in runtimes].count("kserve-sklearnserver") == 1
    isvc = isvcs(DATA / "kserve" / "sklearn-iris.yaml")["sklearn-iris"]
    deployment = render(isvc, cluster=runtimes, mode="Standard")[0]
    server = container(deployment["spec"]["template"]["spec"], "kserve-container")
    assert server["image"] == "kserve/sklearnserver:v0.21.0"
    assert server["readinessProbe"] == {  # not modelplane's server: KServe's TCP probe, no modelplane flags
        "tcpSocket": {"port": 8080},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert "--model-control-mode" not in server["args"]
