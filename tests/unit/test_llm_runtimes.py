"""The vLLM and llama.cpp ClusterServingRuntimes shipped as samples (docs/samples/llm-runtimes.yaml): they are
valid KServe runtimes beside the built-ins, an InferenceService of their model format selects them, and what they
become on Kubernetes carries their own command, the model's name, the runtime's GPU and readiness probe — and
passes the Kubernetes schemas. (Neither engine runs here: vLLM is GPU only; llama.cpp is not installed.)"""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from modelplane.backends.kubernetes.render import render
from modelplane.control.api import InferenceService, ServingRuntime
from modelplane.control.runtime_webhook import validate_runtime
from modelplane.control.runtimes import builtin_runtimes, with_builtins

SAMPLES = Path(__file__).resolve().parents[2] / "docs" / "samples" / "llm-runtimes.yaml"


def runtimes() -> list[ServingRuntime]:
    return [ServingRuntime.model_validate(d) for d in yaml.safe_load_all(SAMPLES.read_text()) if d]


def isvc(fmt: str) -> InferenceService:
    return InferenceService.model_validate(
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "chat", "namespace": "llm"},
            "spec": {"predictor": {"model": {"modelFormat": {"name": fmt}, "storageUri": "s3://models/chat"}}},
        }
    )


def test_the_samples_are_valid_runtimes_beside_the_built_ins() -> None:
    ours = runtimes()
    assert [r.metadata.name for r in ours] == ["modelplane-vllm", "modelplane-llama-cpp"]
    installed = builtin_runtimes()
    for runtime in ours:
        validate_runtime(runtime, installed)
        installed.append(runtime)


@pytest.mark.parametrize(
    ("fmt", "image", "command", "model_arg"),
    [
        ("vllm", "vllm/vllm-openai:v0.11.0", ["vllm", "serve"], ["--served-model-name", "chat"]),
        (
            "gguf",
            "ghcr.io/abetlen/llama-cpp-python:v0.3.16",
            ["python3", "-m", "llama_cpp.server"],
            ["--model_alias", "chat"],
        ),
    ],
)
def test_an_isvc_of_their_format_renders_their_server(
    fmt: str, image: str, command: list[str], model_arg: list
) -> None:
    objects = render(isvc(fmt), cluster=with_builtins(runtimes()), mode="Standard")
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    server = next(c for c in pod["containers"] if c["name"] == "kserve-container")
    assert server["image"] == image and server["command"] == command
    args = server["args"]
    assert any(args[i : i + 2] == model_arg for i in range(len(args)))  # {{.Name}} became the isvc's name
    assert "--model-control-mode" not in args  # not modelplane's server: no modelplane flags
    assert server["readinessProbe"]["httpGet"]["port"] == 8080
    if fmt == "vllm":
        assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    init = [c["name"] for c in pod.get("initContainers", [])]
    assert "storage-initializer" in init  # the model is pulled to /mnt/models as for any runtime
    for obj in objects:
        if not obj["apiVersion"].startswith(("serving.kserve.io", "networking.istio.io", "gateway.networking")):
            kubernetes_validate.validate(copy.deepcopy(obj), "1.30.0", strict=True)
