"""ModelMesh mode's pure parts: concrete ids, the shared deployment, multi-model runtime selection, the vmodel's
switch rule, the states and statuses modelmesh-serving writes, and the gateway's model-name rewrites (REST path,
gRPC bytes)."""

from __future__ import annotations

import pytest

from modelplane.backends.local.gateway import aliased
from modelplane.backends.local.grpc_gateway import model_field, with_model_field
from modelplane.control import modelmesh as mm
from modelplane.control.api import InferenceService
from modelplane.control.runtimes import RuntimeResolutionError, builtin_runtimes, select_runtime
from modelplane.control.trainedmodel import is_mms
from modelplane.grpcproto import inference_pb2 as pb

Seen = mm.ModelObserved


def isvc(name: str = "mm", uri: str = "s3://b/m", fmt: str = "sklearn", status: dict | None = None) -> InferenceService:
    return InferenceService.model_validate(
        {
            "metadata": {"name": name, "annotations": {"serving.kserve.io/deploymentMode": "ModelMesh"}},
            "spec": {"predictor": {"model": {"modelFormat": {"name": fmt}, "storageUri": uri}}},
            "status": status or {},
        }
    )


def test_the_concrete_id_names_the_isvc_and_changes_with_its_model_spec() -> None:
    a, b = mm.concrete_id(isvc(uri="s3://b/m1")), mm.concrete_id(isvc(uri="s3://b/m2"))
    assert a.startswith("mm__isvc-") and b.startswith("mm__isvc-") and a != b
    assert mm.concrete_id(isvc(uri="s3://b/m1")) == a
    assert mm.is_modelmesh(isvc())


def test_model_mesh_selection_picks_among_multi_model_runtimes_only() -> None:
    cluster = builtin_runtimes()
    model = isvc().spec.predictor.model
    assert model is not None
    assert select_runtime(model, "default", [], cluster, multi_model=True).runtime.metadata.name == "mlserver-1.x"
    assert select_runtime(model, "default", [], cluster).runtime.metadata.name == "kserve-sklearnserver"
    onnx = isvc(fmt="onnx").spec.predictor.model
    assert onnx is not None
    assert select_runtime(onnx, "default", [], cluster, multi_model=True).runtime.metadata.name == "triton-2.x"
    pmml = isvc(fmt="pmml").spec.predictor.model
    assert pmml is not None
    with pytest.raises(RuntimeResolutionError) as refused:
        select_runtime(pmml, "default", [], cluster, multi_model=True)
    assert refused.value.reason == "NoSupportingRuntime"
    model.runtime = "kserve-sklearnserver"
    with pytest.raises(RuntimeResolutionError, match="not a multi-model runtime"):
        select_runtime(model, "default", [], cluster, multi_model=True)


def test_the_shared_deployment_is_a_multi_model_predictor_of_pods_per_runtime_replicas() -> None:
    runtime = next(r for r in builtin_runtimes() if r.metadata.name == "mlserver-1.x")
    shared = mm.shared_isvc("team", runtime)
    assert shared.metadata.name == "modelmesh-serving-mlserver-1-x" and shared.metadata.namespace == "team"
    assert shared.spec.predictor.min_replicas == shared.spec.predictor.max_replicas == mm.PODS_PER_RUNTIME
    assert is_mms(shared)  # no storageUri: its models come from the isvcs, into its repository
    assert shared.spec.predictor.model is not None and shared.spec.predictor.model.runtime == "mlserver-1.x"


def test_refusals_say_what_is_not_served() -> None:
    assert mm.refusal(isvc()) is None
    assert "storageUri" in (mm.refusal(isvc(uri="")) or "")
    with_transformer = isvc()
    with_transformer.spec.transformer = with_transformer.spec.predictor.model  # any component
    assert "transformer" in (mm.refusal(with_transformer) or "")


def test_the_vmodel_moves_only_once_the_new_model_has_as_many_copies_as_the_old() -> None:
    assert mm.advance(None, "new", Seen(), Seen()) == "new"  # a new isvc points at its model at once
    assert mm.advance("new", "new", Seen(), Seen()) == "new"
    old = Seen(pulled=True, copies=2)
    assert mm.advance("old", "new", old, Seen(pulled=True)) == "old"
    assert mm.advance("old", "new", old, Seen(pulled=True, copies=1, loading=True)) == "old"
    assert mm.advance("old", "new", old, Seen(pulled=True, copies=2)) == "new"
    assert mm.advance("old", "new", Seen(pulled=True), Seen(pulled=True)) == "old"  # at least one copy
    assert mm.advance("old", "new", Seen(pulled=True), Seen(pulled=True, copies=1)) == "new"


def test_copies_are_asked_for_during_a_transition_and_for_a_model_never_seen_loaded() -> None:
    loaded = {
        "components": {"predictor": {"activeModelId": "a"}},
        "modelStatus": {"states": {"activeModelState": "Loaded"}},
    }
    standby = {**loaded, "modelStatus": {"states": {"activeModelState": "Standby"}}}
    loading = {**loaded, "modelStatus": {"states": {"activeModelState": "Loading"}}}
    assert mm.copies_wanted("a", "b", Seen(copies=3), loaded) == 3
    assert mm.copies_wanted("a", "b", Seen(), loaded) == 1
    assert mm.copies_wanted("a", "a", Seen(), {}) == 1  # ModelMesh's loadNow for a new model
    assert mm.copies_wanted("a", "a", Seen(), loading) == 1
    assert mm.copies_wanted("a", "a", Seen(), loaded) == 0
    assert mm.copies_wanted("a", "a", Seen(), standby) == 0  # evicted: it loads on its next request


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        (Seen(), "Pending"),
        (Seen(pull_error="404"), "FailedToLoad"),
        (Seen(pulled=True), "Standby"),
        (Seen(pulled=True, loading=True), "Loading"),
        (Seen(pulled=True, copies=1, failures={"r": "x"}), "Loaded"),
        (Seen(pulled=True, failures={"r": "x"}), "FailedToLoad"),
    ],
)
def test_model_states(seen: Seen, expected: str) -> None:
    assert mm.state(seen) == expected


def test_the_status_of_a_blocked_transition_keeps_the_active_model_and_names_the_failure() -> None:
    thing = isvc()
    seen = {
        "old": Seen(pulled=True, copies=2),
        "new": Seen(pulled=True, failures={"http://127.0.0.1:40001": "UnpicklingError: bad", "http://x:1": "e"}),
    }
    urls = {"url": "http://gw/serving/default/mm", "restUrl": "http://gw/serving/default/mm"}
    status = mm.status(thing, "old", "new", seen, True, urls, "T")
    ms = status["modelStatus"]
    assert ms["transitionStatus"] == "BlockedByFailedLoad"
    assert ms["states"] == {"activeModelState": "Loaded", "targetModelState": "FailedToLoad"}
    assert ms["copies"] == {"totalCopies": 2, "failedCopies": 0}
    assert ms["lastFailureInfo"]["modelId"] == "new" and ms["lastFailureInfo"]["reason"] == "ModelLoadFailed"
    assert len(ms["lastFailureInfo"]["location"]) <= mm.LOCATION_CHARS
    assert status["components"]["predictor"]["targetModelId"] == "new"
    assert [c["status"] for c in status["conditions"]] == ["True", "True"] and status["url"] == urls["url"]
    moving = mm.status(thing, "old", "new", {**seen, "new": Seen(pulled=True, loading=True)}, True, urls, "T")
    assert moving["modelStatus"]["transitionStatus"] == "InProgress" and "lastFailureInfo" not in moving["modelStatus"]
    settled = mm.status(thing, "new", "new", {"new": Seen(pulled=True)}, True, urls, "T")
    assert settled["modelStatus"]["states"] == {"activeModelState": "Standby", "targetModelState": ""}
    assert "targetModelId" not in settled["components"]["predictor"]
    pending = mm.status(thing, "new", "new", {"new": Seen()}, True, urls, "T")
    assert pending["conditions"][0]["status"] == "False" and "url" not in pending  # not registered yet


def test_a_refused_isvc_has_an_invalid_spec_status() -> None:
    status = mm.refused_status(isvc(), "NoSupportingRuntime", "no runtime", "T")
    assert status["modelStatus"]["transitionStatus"] == "InvalidSpec"
    assert status["conditions"][1] == {
        "type": "Ready",
        "status": "False",
        "lastTransitionTime": "T",
        "reason": "NoSupportingRuntime",
        "message": "no runtime",
    }


def test_a_rest_path_naming_a_vmodel_goes_to_its_concrete_model() -> None:
    aliases = {"mm": "mm__isvc-1a2b"}
    assert aliased("/v2/models/mm/infer", aliases) == "/v2/models/mm__isvc-1a2b/infer"
    assert aliased("/v2/models/mm", aliases) == "/v2/models/mm__isvc-1a2b"
    assert aliased("/v1/models/mm:predict", aliases) == "/v1/models/mm__isvc-1a2b:predict"
    assert aliased("/v2/models/mm/versions/2/infer", aliases) == "/v2/models/mm__isvc-1a2b/versions/2/infer"
    assert aliased("/v2/models/other/infer", aliases) == "/v2/models/other/infer"
    assert aliased("/v2/models/mmx/infer", aliases) == "/v2/models/mmx/infer"
    assert aliased("/v2/health/ready", aliases) == "/v2/health/ready"


def test_a_grpc_request_naming_a_vmodel_is_rewritten_without_decoding_the_rest() -> None:
    request = pb.ModelInferRequest(model_name="mm", model_version="3", id="req-1")
    request.inputs.add(name="x", datatype="FP32", shape=[1, 2]).contents.fp32_contents.extend([1.0, 2.0])
    request.raw_input_contents.append(b"\x00" * 300)  # a length needing a two-byte varint elsewhere in the message
    rewritten = with_model_field(request.SerializeToString(), "mm__isvc-" + "a" * 200)  # and in the new field
    parsed = pb.ModelInferRequest.FromString(rewritten)
    assert parsed.model_name == "mm__isvc-" + "a" * 200 and model_field(rewritten) == parsed.model_name
    assert (parsed.model_version, parsed.id, parsed.inputs[0].name) == ("3", "req-1", "x")
    assert list(parsed.inputs[0].contents.fp32_contents) == [1.0, 2.0] and parsed.raw_input_contents[0] == b"\x00" * 300
    unnamed = with_model_field(pb.ModelReadyRequest(version="1").SerializeToString(), "mm")
    assert pb.ModelReadyRequest.FromString(unnamed).name == "mm"
