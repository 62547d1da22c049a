"""KServe's ServingRuntime / ClusterServingRuntime validation: which runtimes may stand beside which, with
KServe's messages (pkg/webhook/admission/servingruntime)."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane.control.api import ServingRuntime
from modelplane.control.runtime_webhook import runtimes_beside, validate_runtime
from modelplane.control.webhook import ValidationError


def runtime(
    name: str,
    *formats: dict[str, Any],
    kind: str = "ServingRuntime",
    protocols: tuple[str, ...] = ("v2",),
    **spec: Any,
) -> ServingRuntime:
    meta: dict[str, Any] = {"name": name}
    if kind == "ServingRuntime":
        meta["namespace"] = "ml"
    return ServingRuntime.model_validate(
        {
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": kind,
            "metadata": meta,
            "spec": {
                "supportedModelFormats": list(formats),
                "protocolVersions": list(protocols),
                "containers": [{"name": "kserve-container", "image": "example.com/rt:1"}],
                **spec,
            },
        }
    )


def fmt(name: str = "onnx", priority: int | None = 1, auto: bool = True, version: str | None = None) -> dict:
    out: dict[str, Any] = {"name": name, "autoSelect": auto}
    if priority is not None:
        out["priority"] = priority
    if version is not None:
        out["version"] = version
    return out


def test_two_runtimes_may_not_give_one_format_the_same_priority() -> None:
    with pytest.raises(ValidationError) as refused:
        validate_runtime(runtime("b", fmt()), [runtime("a", fmt())])
    assert (
        str(refused.value)
        == "same priority assigned for the model format onnx in the servingruntimes a and b in namespace ml"
    )
    csr = runtime("b", fmt(), kind="ClusterServingRuntime")
    with pytest.raises(ValidationError) as refused:
        validate_runtime(csr, [runtime("a", fmt(), kind="ClusterServingRuntime")])
    assert (
        str(refused.value) == "same priority assigned for the model format onnx in the clusterservingruntimes a and b"
    )


@pytest.mark.parametrize(
    "new, why",
    [
        (runtime("b", fmt(priority=2)), "another priority"),
        (runtime("b", fmt(name="pytorch")), "another format"),
        (runtime("b", fmt(auto=False)), "not auto-selected"),
        (runtime("b", fmt(priority=None)), "no priority"),
        (runtime("b", fmt(version="2")), "another version of the format"),
        (runtime("b", fmt(), protocols=("v1",)), "no protocol in common"),
        (runtime("b", fmt(), multiModel=True), "multi-model beside single-model"),
        (runtime("b", fmt(), disabled=True), "itself disabled"),
        (runtime("a", fmt(), protocols=("v2", "grpc-v2")), "an update of the same runtime"),
    ],
)
def test_runtimes_that_cannot_compete_are_allowed(new: ServingRuntime, why: str) -> None:
    validate_runtime(new, [runtime("a", fmt())])


def test_a_disabled_runtime_does_not_count() -> None:
    validate_runtime(runtime("b", fmt()), [runtime("a", fmt(), disabled=True)])


def test_one_runtime_may_not_list_a_format_with_two_priorities() -> None:
    with pytest.raises(ValidationError) as refused:
        validate_runtime(runtime("b", fmt(priority=1), fmt(priority=2)), [runtime("a", fmt(name="sklearn"))])
    assert str(refused.value) == "different priorities assigned for the model format onnx under the servingruntime b"


def test_a_cluster_runtime_is_checked_against_the_built_ins_it_does_not_replace() -> None:
    mine = runtime("my-sklearn", fmt("sklearn", version="1"), kind="ClusterServingRuntime", protocols=("v1", "v2"))
    with pytest.raises(ValidationError, match="in the clusterservingruntimes kserve-sklearnserver and my-sklearn"):
        validate_runtime(mine, runtimes_beside(mine, []))
    replacement = runtime(
        "kserve-sklearnserver", fmt("sklearn", version="1"), kind="ClusterServingRuntime", protocols=("v1", "v2")
    )
    validate_runtime(replacement, runtimes_beside(replacement, []))  # a runtime of a built-in name replaces it
    namespaced = runtime("my-sklearn", fmt("sklearn", version="1"), protocols=("v1", "v2"))
    validate_runtime(namespaced, runtimes_beside(namespaced, []))  # a namespace's runtimes are a list of their own


def test_the_operators_webhook_answers_with_the_message_or_the_schema_error() -> None:
    from modelplane.backends.kubernetes.admission import runtime_refusal

    clash = runtime("b", fmt()).model_dump(by_alias=True, exclude_none=True)
    assert runtime_refusal(clash, [runtime("a", fmt()).model_dump(by_alias=True, exclude_none=True)]) == (
        "same priority assigned for the model format onnx in the servingruntimes a and b in namespace ml"
    )
    broken = {**clash, "spec": {"supportedModelFormats": "onnx"}}
    message = runtime_refusal(broken, [])
    assert message is not None and message.startswith("spec.supportedModelFormats")
    assert runtime_refusal(clash, []) is None
