"""KServe's TrainedModel rules, pure: the webhook's refusals, which predictors are multi-model servers, memory
admission oldest first against the predictor's limit, and the status (conditions, URL, stable transition times)."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane.control import trainedmodel as tmctl
from modelplane.control.api import InferenceService, TrainedModel
from modelplane.control.webhook import ValidationError


def isvc(predictor: dict[str, Any], status: dict[str, Any] | None = None) -> InferenceService:
    doc = {"metadata": {"name": "mms"}, "spec": {"predictor": predictor}, "status": status or {}}
    return InferenceService.model_validate(doc)


def tm(name: str = "m1", memory: str = "256Mi", created: str = "2026-01-01T00:00:00Z", **model: Any) -> TrainedModel:
    spec = {"storageUri": "s3://bucket/m", "framework": "sklearn", "memory": memory, **model}
    meta = {"name": name, "creationTimestamp": created}
    return TrainedModel.model_validate({"metadata": meta, "spec": {"inferenceService": "mms", "model": spec}})


def test_the_webhook_refuses_what_kserve_refuses() -> None:
    tmctl.validate(tm())
    with pytest.raises(ValidationError, match=r"\[a-zA-Z0-9_-\]\+"):
        tmctl.validate(tm("a.b"))
    with pytest.raises(ValidationError, match="storageUri"):
        tmctl.validate(tm(storageUri="ftp://x"))
    with pytest.raises(ValidationError, match="framework"):
        tmctl.validate(tm(framework=""))
    with pytest.raises(ValidationError, match="memory"):
        tmctl.validate(tm(memory="lots"))
    with pytest.raises(ValidationError, match="immutable"):
        tmctl.validate(tm(memory="512Mi"), old=tm(memory="256Mi"))


def test_a_predictor_without_storage_is_a_multi_model_server() -> None:
    assert tmctl.is_mms(isvc({"sklearn": {}}))
    assert tmctl.is_mms(isvc({"model": {"modelFormat": {"name": "xgboost"}}}))
    assert not tmctl.is_mms(isvc({"sklearn": {"storageUri": "s3://b/m"}}))
    assert not tmctl.is_mms(isvc({"model": {"modelFormat": {"name": "huggingface"}}}))
    container = {"name": "kserve-container", "image": "x", "env": [{"name": "MULTI_MODEL_SERVER", "value": "true"}]}
    assert tmctl.is_mms(isvc({"containers": [container]}))
    assert not tmctl.is_mms(isvc({"containers": [{**container, "env": []}]}))


def test_memory_is_admitted_oldest_first_up_to_the_limit() -> None:
    parent = isvc({"sklearn": {"resources": {"limits": {"memory": "1Gi"}}}})
    limit = tmctl.memory_limit(parent)
    assert limit == 2**30 and tmctl.memory_limit(isvc({"sklearn": {}})) == tmctl.DEFAULT_MEMORY
    models = [
        tm("late", "512Mi", "2026-01-03T00:00:00Z"),
        tm("first", "512Mi", "2026-01-01T00:00:00Z"),
        tm("second", "256Mi", "2026-01-02T00:00:00Z"),
        tm("small", "128Mi", "2026-01-04T00:00:00Z"),
    ]
    assert tmctl.admitted(models, limit) == {"first", "second", "small"}


def test_status_conditions_url_and_stable_transition_times() -> None:
    ready = {"url": "http://mms.default.example.com", "conditions": [{"type": "Ready", "status": "True"}]}
    parent = isvc({"sklearn": {"protocolVersion": "v2"}}, ready)
    model = tm()
    first = tmctl.status(model, parent, True, None, "t1")
    assert {c["type"]: c["status"] for c in first["conditions"]} == {
        "FrameworkSupported": "True",
        "InferenceServiceReady": "True",
        "IsMMSPredictor": "True",
        "MemoryResourceAvailable": "True",
        "Ready": "True",
    }
    assert first["url"] == "http://mms.default.example.com/v2/models/m1/infer"
    model.status = first
    assert tmctl.status(model, parent, True, None, "t2") == first  # nothing changed: the same document
    pulling = tmctl.status(model, parent, True, "pulling s3://bucket/m", "t3")
    ready_condition = pulling["conditions"][-1]
    assert ready_condition["status"] == "False" and ready_condition["reason"] == "ModelNotPulled"
    assert ready_condition["lastTransitionTime"] == "t3"
    short = tmctl.status(model, parent, False, None, "t4")
    assert short["conditions"][-1]["reason"] == "MemoryResourceNotAvailable"
    single = isvc({"sklearn": {"storageUri": "s3://b/m"}}, ready)
    assert tmctl.status(model, single, True, None, "t5")["conditions"][-1]["reason"] == "IsNotMMSPredictor"


def test_a_load_failure_keeps_the_model_unready_with_the_replicas_message() -> None:
    ready = {"url": "http://mms.default.example.com", "conditions": [{"type": "Ready", "status": "True"}]}
    parent = isvc({"sklearn": {}}, ready)
    out = tmctl.status(tm(), parent, True, None, "t1", "http://127.0.0.1:9: UnpicklingError: invalid load key")
    condition = out["conditions"][-1]
    assert condition["reason"] == "ModelLoadFailed" and "invalid load key" in condition["message"]
    assert tmctl.status(tm(), parent, True, "pulling", "t1", "old failure")["conditions"][-1]["reason"] == (
        "ModelNotPulled"
    )
