"""Layer 1 of the Kubernetes backend's tests: every object rendered for every sample manifest, in both modes and
with each ingress flavour, validates against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: an
unknown field is an error, since the API server would silently drop it) and against the Knative / Istio /
Gateway API / KEDA CRD schemas (minimal copies in tests/data/crds). Golden files pin the output."""

from __future__ import annotations

import copy
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from support.schemas import jsonschema_of as _jsonschema

from modelplane.backends.kubernetes.config import ClusterConfig
from modelplane.backends.kubernetes.crds import crds
from modelplane.backends.kubernetes.render import render
from modelplane.control.api import InferenceService, ServingRuntime
from modelplane.control.runtimes import builtin_runtimes
from modelplane.control.webhook import ValidationError

DATA = Path(__file__).parents[1] / "data"
SAMPLES = sorted((DATA / "kserve").glob("*.yaml")) + sorted((DATA / "render-inputs").glob("*.yaml"))
GOLDEN = DATA / "render"
K8S_VERSION = "1.30.0"
CORE = {"apps/v1", "v1", "networking.k8s.io/v1", "autoscaling/v2", "autoscaling/v2beta2"}


def _third_party() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in sorted((DATA / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            api = f"{crd['spec']['group']}/{version['name']}"
            root = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            implicit = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
            root.setdefault("properties", {}).update(implicit)  # every object has these; CRDs may not say so
            out[(api, crd["spec"]["names"]["kind"])] = _jsonschema(root)
    return out


THIRD_PARTY = _third_party()


def _documents(path: Path) -> tuple[list[InferenceService], list[ServingRuntime], list[ServingRuntime]]:
    isvcs, namespaced, cluster = [], [], builtin_runtimes()
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue
        if doc["kind"] == "InferenceService":
            isvcs.append(InferenceService.model_validate(doc))
        elif doc["kind"] == "ClusterServingRuntime":
            cluster.append(ServingRuntime.model_validate(doc))
        else:
            namespaced.append(ServingRuntime.model_validate(doc))
    return isvcs, namespaced, cluster


FLAVOURS = {
    "standard": ("Standard", ClusterConfig()),
    "standard-gateway-api": (
        "Standard",
        ClusterConfig(ingress=replace(ClusterConfig().ingress, enableGatewayApi=True)),
    ),
    "standard-v2beta2": ("Standard", ClusterConfig(hpa_version="v2beta2")),
    "knative": ("Knative", ClusterConfig()),
}


def _rendered(sample: Path, flavour: str) -> list[dict[str, Any]]:
    mode, config = FLAVOURS[flavour]
    isvcs, namespaced, cluster = _documents(sample)
    out = []
    for isvc in isvcs:
        isvc.metadata.uid = "00000000-0000-0000-0000-000000000001"  # as the API server gives it: owner refs
        out += render(isvc, config, namespaced, cluster, mode)
    return out


def validate(obj: dict[str, Any]) -> None:
    api, kind = obj["apiVersion"], obj["kind"]
    if api in CORE:
        version = "1.25.0" if api == "autoscaling/v2beta2" else K8S_VERSION  # v2beta2 was removed in 1.26
        kubernetes_validate.validate(copy.deepcopy(obj), version, strict=True)
    else:
        assert (api, kind) in THIRD_PARTY, f"no schema for {api} {kind}"
        jsonschema.validate(obj, THIRD_PARTY[(api, kind)])


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_every_rendered_object_validates(sample: Path, flavour: str) -> None:
    """A sample KServe's webhook refuses in a mode (Knative-only autoscaling in Standard) is refused here too: its
    golden file holds the message."""
    try:
        objects = _rendered(sample, flavour)
    except ValidationError as exc:
        text = f"# refused: {exc}\n"
    else:
        assert objects, "every sample renders to something"
        for obj in objects:
            validate(obj)
        text = yaml.safe_dump_all(objects, sort_keys=False)
    golden = GOLDEN / f"{sample.stem}.{flavour}.yaml"
    if os.environ.get("MODELPLANE_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"{golden} missing: run with MODELPLANE_UPDATE_GOLDEN=1 and review the diff"
    assert text == golden.read_text(), f"{golden.name} changed: review, then MODELPLANE_UPDATE_GOLDEN=1"


def test_a_schema_violation_is_caught() -> None:
    """The checks above can fail: a misspelt field in a Deployment and a bad weight in an HTTPRoute are refused."""
    objects = _rendered(DATA / "kserve" / "sklearn-iris.yaml", "standard-gateway-api")
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    route = next(o for o in objects if o["kind"] == "HTTPRoute")
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = "half"
    with pytest.raises(jsonschema.ValidationError):
        validate(route)


def test_our_crds_are_valid_and_accept_the_samples() -> None:
    """The generated CRDs validate as apiextensions.k8s.io/v1 objects, and every sample object validates against
    the schema of its kind (and a wrong type is refused)."""
    schemas = {}
    for crd in crds():
        kubernetes_validate.validate(copy.deepcopy(crd), K8S_VERSION, strict=True)
        version = crd["spec"]["versions"][0]
        schemas[crd["spec"]["names"]["kind"]] = _jsonschema(version["schema"]["openAPIV3Schema"])
    for sample in SAMPLES:
        for doc in yaml.safe_load_all(sample.read_text()):
            if doc:
                jsonschema.validate(doc, schemas[doc["kind"]])
    bad = yaml.safe_load((DATA / "kserve" / "sklearn-iris.yaml").read_text())
    bad["spec"]["predictor"]["minReplicas"] = "lots"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schemas["InferenceService"])
