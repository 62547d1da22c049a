"""Control-plane API: KServe's samples parse unchanged; defaulting, validation messages and runtime selection
follow KServe's rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelplane.control.api import InferenceService, ServingRuntime, parse
from modelplane.control.runtimes import (
    RuntimeResolutionError,
    builtin_runtimes,
    select_runtime,
    server_container,
)
from modelplane.control.webhook import ValidationError, default, validate

DATA = Path(__file__).resolve().parents[1] / "data" / "kserve"


def load(name: str) -> list:
    return [parse(d) for d in yaml.safe_load_all((DATA / name).read_text()) if d]


def isvc(predictor: dict, name: str = "m", annotations: dict | None = None) -> InferenceService:
    doc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"predictor": predictor},
    }
    return InferenceService.model_validate(doc)


def runtime(name, formats, protocols=("v1", "v2"), kind="ServingRuntime", created=None, ns="default", **spec):
    return ServingRuntime.model_validate(
        {
            "kind": kind,
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
            "spec": {"supportedModelFormats": formats, "protocolVersions": list(protocols), **spec},
        }
    )


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.yaml")))
def test_every_kserve_sample_parses_defaults_and_validates(name):
    for obj in load(name):
        if isinstance(obj, InferenceService):
            validate(default(obj))
            assert obj.spec.predictor.model is not None
            assert obj.dump()["apiVersion"] == "serving.kserve.io/v1beta1"


def test_legacy_framework_field_is_rewritten_into_model():
    [obj] = load("sklearn-iris-legacy.yaml")
    default(obj)
    assert obj.spec.predictor.sklearn is None
    model = obj.spec.predictor.model
    assert model.model_format.name == "sklearn" and model.storage_uri.endswith("sklearn/1.0/model")
    assert model.resources == {"requests": {"cpu": "100m", "memory": "256Mi"}}
    assert obj.metadata.annotations["modelFormat"] == "sklearn"


def test_onnx_legacy_field_gets_protocol_v2_and_modes_are_normalised():
    obj = default(
        isvc({"onnx": {"storageUri": "s3://b/m"}}, annotations={"serving.kserve.io/deploymentMode": "RawDeployment"})
    )
    assert obj.spec.predictor.model.protocol_version == "v2"
    assert obj.metadata.annotations["serving.kserve.io/deploymentMode"] == "Standard"


@pytest.mark.parametrize(
    "predictor,name,message",
    [
        (
            {"model": {"modelFormat": {"name": "sklearn"}}},
            "Bad_Name",
            "a InferenceService name must consist of lower case",
        ),
        ({}, "m", "Exactly one of [SKLearn, XGBoost"),
        ({"sklearn": {}, "model": {"modelFormat": {"name": "sklearn"}}}, "m", "must be specified in PredictorSpec"),
        ({"sklearn": {"name": "x"}}, "m", "the 'name' field is not allowed in standard predictor"),
        ({"minReplicas": -1, "sklearn": {}}, "m", "MinReplicas cannot be less than 0."),
        ({"maxReplicas": -1, "sklearn": {}}, "m", "MaxReplicas cannot be less than 0."),
        ({"minReplicas": 3, "maxReplicas": 2, "sklearn": {}}, "m", "MinReplicas cannot be greater than MaxReplicas."),
        ({"containerConcurrency": -1, "sklearn": {}}, "m", "Parallelism cannot be less than 0."),
        ({"logger": {"mode": "everything"}, "sklearn": {}}, "m", "Invalid logger type"),
    ],
)
def test_validation_messages_are_kserves(predictor, name, message):
    with pytest.raises(ValidationError) as err:
        validate(isvc(predictor, name))
    assert message in str(err.value)


@pytest.mark.parametrize(
    "predictor,annotations,message",
    [
        ({"scaleMetric": "gpu"}, {}, "unknown metric 'gpu'"),
        ({"scaleMetric": "concurrency"}, {"serving.kserve.io/deploymentMode": "RawDeployment"}, "not an hpa metric"),
        ({}, {"autoscaling.knative.dev/window": "2s"}, "window must be 6s .. 1h"),
        ({}, {"autoscaling.knative.dev/target": "many"}, "not a number"),
        ({}, {"autoscaling.knative.dev/class": "magic.autoscaling.knative.dev"}, "unknown autoscaler class"),
        ({}, {"autoscaling.knative.dev/metric": "cpu", "autoscaling.knative.dev/class": "kpa"}, "needs the hpa class"),
    ],
)
def test_autoscaling_settings_are_validated_at_apply(predictor, annotations, message):
    with pytest.raises(ValidationError, match="invalid autoscaling settings") as err:
        validate(isvc({"sklearn": {}, **predictor}, annotations=annotations))
    assert message in str(err.value)
    validate(
        isvc({"sklearn": {}, "minReplicas": 0, "scaleTarget": 5}, annotations={"autoscaling.knative.dev/window": "6s"})
    )


def test_deployment_mode_is_immutable():
    old = isvc({"sklearn": {}}, annotations={"serving.kserve.io/deploymentMode": "Standard"})
    new = isvc({"sklearn": {}}, annotations={"serving.kserve.io/deploymentMode": "Knative"})
    with pytest.raises(ValidationError, match="deploymentMode cannot be changed"):
        validate(new, old)
    validate(isvc({"sklearn": {}}, annotations={"serving.kserve.io/deploymentMode": "RawDeployment"}), old)


def model(fmt="sklearn", version=None, protocol=None, runtime_name=None):
    obj = isvc(
        {
            "model": {
                "modelFormat": {"name": fmt, "version": version},
                "protocolVersion": protocol,
                "runtime": runtime_name,
            }
        }
    )
    return obj.spec.predictor.model


def test_builtin_picks_and_protocol_stamp():
    cluster = builtin_runtimes()
    assert select_runtime(model("sklearn"), "default", [], cluster).runtime.metadata.name == "kserve-sklearnserver"
    assert select_runtime(model("xgboost"), "default", [], cluster).runtime.metadata.name == "kserve-xgbserver"
    chosen = select_runtime(model("lightgbm"), "default", [], cluster)
    assert chosen.runtime.metadata.name == "kserve-lgbserver" and chosen.protocol == "v1" and chosen.cluster
    assert select_runtime(model("sklearn", protocol="v2"), "default", [], cluster).protocol == "v2"
    with pytest.raises(RuntimeResolutionError) as err:
        select_runtime(model("onnx"), "default", [], cluster)
    assert err.value.reason == "NoSupportingRuntime"


def test_a_namespace_runtime_beats_any_cluster_runtime_and_versions_must_match():
    objs = load("custom-runtime.yaml")
    rt = next(o for o in objs if isinstance(o, ServingRuntime))
    chosen = select_runtime(model("sklearn", version="1"), "default", [rt], builtin_runtimes())
    assert chosen.runtime.metadata.name == "my-sklearn-runtime" and not chosen.cluster
    assert select_runtime(model("sklearn", version="1"), "other-ns", [rt], builtin_runtimes()).cluster
    with pytest.raises(RuntimeResolutionError):  # built-ins list sklearn version "1" only
        select_runtime(model("sklearn", version="2"), "default", [], builtin_runtimes())


def test_priority_dominates_then_protocol_then_newest_then_name():
    fmt = {"name": "sklearn", "autoSelect": True}
    low = runtime("a-low", [{**fmt, "priority": 1}], kind="ClusterServingRuntime")
    high = runtime("z-high", [{**fmt, "priority": 9}], protocols=("v2",), kind="ClusterServingRuntime")
    assert select_runtime(model(protocol="v2"), "default", [], [low, high]).runtime.metadata.name == "z-high"
    old = runtime("old", [fmt], created="2024-01-01T00:00:00Z")
    new = runtime("new", [fmt], created="2025-01-01T00:00:00Z")
    assert select_runtime(model(), "default", [old, new], []).runtime.metadata.name == "new"
    v2_only = runtime("b-v2", [fmt], protocols=("v2",), created="2026-01-01T00:00:00Z")
    assert select_runtime(model(protocol="v2"), "default", [v2_only, old], []).runtime.metadata.name == "old"
    not_auto = runtime("manual", [{"name": "sklearn", "autoSelect": False, "priority": 50}])
    assert select_runtime(model(), "default", [not_auto, old], []).runtime.metadata.name == "old"


def test_explicit_runtime_errors_carry_kserves_reasons():
    rt = runtime("v2only", [{"name": "sklearn"}], protocols=("v2",))
    disabled = runtime("off", [{"name": "sklearn"}], disabled=True)
    cases = [
        (model(runtime_name="missing"), "RuntimeNotRecognized"),
        (model(runtime_name="v2only"), "NoSupportingRuntime"),
        (model("xgboost", protocol="v2", runtime_name="v2only"), "NoSupportingRuntime"),
        (model(runtime_name="off"), "RuntimeDisabled"),
    ]
    for m, reason in cases:
        with pytest.raises(RuntimeResolutionError) as err:
            select_runtime(m, "default", [rt, disabled], [])
        assert err.value.reason == reason
    assert select_runtime(model(protocol="v2", runtime_name="v2only"), "default", [rt], []).protocol == "v2"


def test_server_container_merges_args_and_renders_placeholders():
    obj = isvc(
        {
            "model": {
                "modelFormat": {"name": "sklearn"},
                "args": ["--workers=2"],
                "env": [{"name": "A", "value": "{{.Namespace}}"}],
            }
        },
        name="iris",
    )
    chosen = select_runtime(obj.spec.predictor.model, "default", [], builtin_runtimes())
    c = server_container(obj, chosen)
    assert c.args == ["--model_name=iris", "--model_dir=/mnt/models", "--http_port=8080", "--workers=2"]
    assert [(e.name, e.value) for e in c.env] == [("A", "default")] and c.name == "kserve-container"
