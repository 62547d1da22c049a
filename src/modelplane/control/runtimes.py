"""Control plane: the built-in ClusterServingRuntimes, runtime selection with KServe's exact ordering, and the
merged, templated server container of a predictor."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelplane.control.api import Container, EnvVar, InferenceService, ModelSpec, ObjectMeta, ServingRuntime

PROTOCOL_RANK = {"v1": 1, "v2": 2, "grpc-v1": 3, "grpc-v2": 4}
EPOCH = "1970-01-01T00:00:00Z"


Format = tuple[str, str, int | None]  # name, version, priority (None: not auto-selected)


def _builtin(
    name: str, formats: list[Format], protocols: list[str], extra_args: list[str], multi_model: bool = False
) -> ServingRuntime:
    return ServingRuntime.model_validate(
        {
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "ClusterServingRuntime",
            "metadata": {"name": name, "annotations": {"serving.kserve.io/server-type": name.removeprefix("kserve-")}},
            "spec": {
                "supportedModelFormats": [
                    {"name": f, "version": v, **({"autoSelect": True, "priority": p} if p is not None else {})}
                    for f, v, p in formats
                ],
                "protocolVersions": protocols,
                "multiModel": multi_model,
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": f"modelplane/{name.removeprefix('kserve-')}",  # recorded; runs modelplane serve
                        "args": ["--model_name={{.Name}}", "--model_dir=/mnt/models", "--http_port=8080", *extra_args],
                    }
                ],
            },
        }
    )


def builtin_runtimes() -> list[ServingRuntime]:
    """KServe's ClusterServingRuntimes by KServe's names, formats, priorities and protocols, served by modelplane's
    own runtimes (the server tells the framework from the model's files): sklearn, xgboost and lightgbm; ONNX and
    TensorFlow (and PyTorch when named) as `kserve-tritonserver`; TensorFlow over v1 as
    `kserve-tensorflow-serving`; PyTorch as `kserve-torchserve` (TorchScript / exported programs, not TorchServe's
    .mar archives); Hugging Face encoders as `kserve-huggingfaceserver`; PMML as `kserve-pmmlserver`; Spark MLlib
    pipelines as `modelplane-mllibserver`."""
    v1v2, v2g = ["v1", "v2"], ["v2", "grpc-v2"]
    return [
        _builtin("kserve-sklearnserver", [("sklearn", "1", 1)], v1v2, []),
        _builtin("kserve-xgbserver", [("xgboost", "2", 1)], v1v2, ["--nthread=1"]),
        _builtin("kserve-lgbserver", [("lightgbm", "4", 1)], v1v2, []),
        _builtin(
            "kserve-tritonserver",
            [("onnx", "1", 1), ("pytorch", "1", None), ("tensorflow", "1", 1), ("tensorflow", "2", 1)],
            ["v2", "grpc-v2"],
            [],
        ),
        # TF Serving's REST API (v1); its gRPC API (grpc-v1) is not served
        _builtin("kserve-tensorflow-serving", [("tensorflow", "1", 2), ("tensorflow", "2", 2)], ["v1"], []),
        _builtin("kserve-torchserve", [("pytorch", "1", 2)], ["v1", "v2", "grpc-v2"], []),
        _builtin("kserve-huggingfaceserver", [("huggingface", "1", 1)], v1v2, []),
        _builtin("kserve-pmmlserver", [("pmml", "3", 1), ("pmml", "4", 1)], v1v2, []),
        # KServe has no Spark runtime (MLServer's mllib is not among KServe's): modelplane's own name
        _builtin("modelplane-mllibserver", [("mllib", "1", 1), ("mllib", "3", 1)], v1v2, []),
        # ModelMesh's multi-model runtimes (deploymentMode: ModelMesh), by modelmesh-serving's names and formats;
        # each runs as one shared deployment of modelplane servers with a model cache (control/modelmesh.py)
        _builtin("mlserver-1.x", [("sklearn", "0", 1), ("xgboost", "1", 1), ("lightgbm", "3", 1)], v2g, [], True),
        _builtin(
            "triton-2.x",
            [("onnx", "1", 1), ("pytorch", "1", 1), ("tensorflow", "1", 1), ("tensorflow", "2", 1)],
            v2g,
            [],
            True,
        ),
    ]


def with_builtins(cluster: list[ServingRuntime]) -> list[ServingRuntime]:
    """The cluster's ClusterServingRuntimes after the built-in ones they do not replace: one of the same name
    replaces the built-in (on Kubernetes, `config/` installs them and a user may swap the image)."""
    names = {rt.metadata.name for rt in cluster}
    return [rt for rt in builtin_runtimes() if rt.metadata.name not in names] + cluster


class RuntimeResolutionError(Exception):
    """Why no runtime serves the predictor; `reason` is KServe's modelStatus.lastFailureInfo.reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Selected:
    runtime: ServingRuntime
    protocol: str

    @property
    def cluster(self) -> bool:
        return self.runtime.kind == "ClusterServingRuntime"


def _protocol(model: ModelSpec) -> str:
    return model.protocol_version or "v1"  # an unset protocol counts as v1 when filtering (ModelSpec.GetProtocol)


def _supports_protocol(rt: ServingRuntime, protocol: str) -> bool:
    return not rt.spec.protocol_versions or protocol in rt.spec.protocol_versions


def _labels(rt: ServingRuntime, auto_only: bool) -> set[str]:
    out = set()
    for f in rt.spec.supported_model_formats:
        if auto_only and not f.auto_select:
            continue
        out.add(f"mt:{f.name}")
        if f.version:
            out.add(f"mt:{f.name}:{f.version}")
    return out


def _model_label(model: ModelSpec) -> str:
    fmt = model.model_format
    return f"mt:{fmt.name}:{fmt.version}" if fmt.version else f"mt:{fmt.name}"


def _ordered(runtimes: list[ServingRuntime], fmt: str) -> list[ServingRuntime]:
    def base(rt: ServingRuntime) -> tuple[int, float, str]:
        lowest = min((PROTOCOL_RANK.get(p, 5) for p in rt.spec.protocol_versions), default=5)
        created = datetime.fromisoformat((rt.metadata.creation_timestamp or EPOCH).replace("Z", "+00:00"))
        return (lowest, -created.timestamp(), rt.metadata.name)  # newest first

    def priority(rt: ServingRuntime) -> tuple[int, int]:
        for f in rt.spec.supported_model_formats:
            if f.name == fmt and f.priority is not None:
                return (0, -f.priority)
        return (1, 0)

    return sorted(sorted(runtimes, key=base), key=priority)  # the second sort is stable: priority dominates


def select_runtime(
    model: ModelSpec,
    namespace: str,
    namespaced: list[ServingRuntime],
    cluster: list[ServingRuntime],
    multi_model: bool = False,
) -> Selected:
    """The runtime KServe would pick for `model`, or RuntimeResolutionError with KServe's reason. `multi_model`:
    for a ModelMesh predictor, chosen among the `multiModel: true` runtimes (modelmesh-serving does not filter by
    protocol: its runtimes serve gRPC and REST through the mesh)."""
    protocol = _protocol(model)
    if model.runtime:
        rt = next(
            (r for r in namespaced if r.metadata.name == model.runtime and r.metadata.namespace == namespace), None
        )
        rt = rt or next((r for r in cluster if r.metadata.name == model.runtime), None)
        if rt is None:
            raise RuntimeResolutionError("RuntimeNotRecognized", "Waiting for runtime to become available")
        if rt.spec.disabled:
            raise RuntimeResolutionError("RuntimeDisabled", f"Runtime {rt.metadata.name} is disabled")
        if multi_model and not rt.spec.multi_model:
            raise RuntimeResolutionError(
                "NoSupportingRuntime", f"Runtime {rt.metadata.name} is not a multi-model runtime (multiModel: true)"
            )
        if not multi_model and not _supports_protocol(rt, protocol):
            raise RuntimeResolutionError(
                "NoSupportingRuntime", f"Runtime {rt.metadata.name} does not support protocol {protocol}"
            )
        if _model_label(model) not in _labels(rt, auto_only=False):
            raise RuntimeResolutionError(
                "NoSupportingRuntime",
                f"Runtime {rt.metadata.name} does not support model format {model.model_format.name}",
            )
        return Selected(rt, model.protocol_version or _lowest_protocol(rt))

    def candidates(pool: list[ServingRuntime]) -> list[ServingRuntime]:
        label = _model_label(model)
        return [
            r
            for r in pool
            if not r.spec.disabled
            and r.spec.multi_model == multi_model
            and (multi_model or _supports_protocol(r, protocol))
            and label in _labels(r, auto_only=True)
        ]

    local = [r for r in namespaced if r.metadata.namespace == namespace]
    ordered = _ordered(candidates(local), model.model_format.name) + _ordered(
        candidates(cluster), model.model_format.name
    )
    if not ordered:
        raise RuntimeResolutionError("NoSupportingRuntime", "No runtime found to support specified framework/version")
    return Selected(ordered[0], model.protocol_version or _lowest_protocol(ordered[0]))


def _lowest_protocol(rt: ServingRuntime) -> str:
    return min(rt.spec.protocol_versions, key=lambda p: PROTOCOL_RANK.get(p, 5), default="v1")


_PLACEHOLDER = re.compile(r"\{\{\s*\.(Name|Namespace|Annotations\.([\w./-]+)|Labels\.([\w./-]+))\s*\}\}")


def render(text: str, meta: ObjectMeta) -> str:
    """Go-template placeholders KServe supports in runtime containers: {{.Name}}, {{.Namespace}},
    {{.Annotations.key}}, {{.Labels.key}}."""

    def one(m: re.Match[str]) -> str:
        if m.group(1) == "Name":
            return meta.name
        if m.group(1) == "Namespace":
            return meta.namespace
        if m.group(2) is not None:
            return meta.annotations.get(m.group(2), "")
        return meta.labels.get(m.group(3) or "", "")

    return _PLACEHOLDER.sub(one, text)


def server_container(isvc: InferenceService, selected: Selected) -> Container:
    """The runtime's kserve-container merged with the isvc's model container (args concatenated, env by name,
    other fields overridden), placeholders rendered."""
    containers = selected.runtime.spec.containers
    base = next((c for c in containers if c.name == "kserve-container"), containers[0] if containers else Container())
    model = isvc.spec.predictor.model
    assert model is not None
    merged: dict[str, Any] = base.model_dump(exclude_none=True)
    own = model.model_dump(exclude_none=True, include={"image", "command", "resources"})
    merged.update(own)
    merged["args"] = [*(base.args or []), *(model.args or [])]
    env = {e.name: e for e in base.env or []}
    env.update({e.name: e for e in model.env or []})
    merged["env"] = [e.model_dump(exclude_none=True) for e in env.values()]
    container = Container.model_validate(merged)
    container.name = "kserve-container"
    meta = isvc.metadata
    container.args = [render(a, meta) for a in container.args or []]
    container.command = [render(a, meta) for a in container.command] if container.command else None
    container.env = [EnvVar(name=e.name, value=render(e.value or "", meta)) for e in container.env or []]
    return container
