"""Control plane: typed KServe API objects (InferenceService, ServingRuntime) with KServe's camelCase field names.

Unknown fields are kept (extra="allow") so a user's YAML round-trips unchanged; only what the control plane reads
is typed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

SERVING_GROUP = "serving.kserve.io"
ISVC_API = f"{SERVING_GROUP}/v1beta1"
RUNTIME_API = f"{SERVING_GROUP}/v1alpha1"
FRAMEWORKS = (
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "huggingface",
    "pmml",
    "lightgbm",
    "paddle",
)


class Obj(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ObjectMeta(Obj):
    name: str = ""
    namespace: str = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int = 0
    creation_timestamp: str | None = None
    uid: str | None = None


class EnvVar(Obj):
    name: str
    value: str | None = None


class Container(Obj):
    name: str | None = None
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[EnvVar] | None = None
    resources: dict[str, Any] | None = None


class PredictorExtension(Container):
    """A legacy framework field (`sklearn:` …) or the body of `model:` — a container plus where the model is."""

    storage_uri: str | None = Field(default=None, alias="storageUri")
    protocol_version: str | None = None
    runtime_version: str | None = None


class ModelFormat(Obj):
    name: str
    version: str | None = None


class ModelSpec(PredictorExtension):
    model_format: ModelFormat
    runtime: str | None = None


class LoggerSpec(Obj):
    url: str | None = None
    mode: str = "all"
    metadata_headers: list[str] | None = None


class BatcherSpec(Obj):
    max_batch_size: int | None = None
    max_latency: int | None = None
    timeout: int | None = None


class ComponentExtension(Obj):
    min_replicas: int | None = None
    max_replicas: int | None = None  # None or 0: unlimited
    scale_target: int | None = None
    scale_metric: str | None = None
    container_concurrency: int | None = None
    timeout: int | None = None
    canary_traffic_percent: int | None = None
    logger: LoggerSpec | None = None
    batcher: BatcherSpec | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class PredictorSpec(ComponentExtension):
    model: ModelSpec | None = None
    sklearn: PredictorExtension | None = None
    xgboost: PredictorExtension | None = None
    tensorflow: PredictorExtension | None = None
    pytorch: PredictorExtension | None = None
    triton: PredictorExtension | None = None
    onnx: PredictorExtension | None = None
    huggingface: PredictorExtension | None = None
    pmml: PredictorExtension | None = None
    lightgbm: PredictorExtension | None = None
    paddle: PredictorExtension | None = None
    containers: list[Container] | None = None


class CustomComponentSpec(ComponentExtension):
    """Transformer and explainer: custom containers (the first, or the one named kserve-container, is the server)."""

    containers: list[Container] | None = None


class InferenceServiceSpec(Obj):
    predictor: PredictorSpec
    transformer: CustomComponentSpec | None = None
    explainer: CustomComponentSpec | None = None


class InferenceService(Obj):
    api_version: str = ISVC_API
    kind: str = "InferenceService"
    metadata: ObjectMeta
    spec: InferenceServiceSpec
    status: dict[str, Any] = Field(default_factory=dict)


class SupportedModelFormat(Obj):
    name: str
    version: str | None = None
    auto_select: bool | None = None
    priority: int | None = None


class ServingRuntimeSpec(Obj):
    supported_model_formats: list[SupportedModelFormat] = Field(default_factory=list)
    protocol_versions: list[str] = Field(default_factory=list)
    multi_model: bool = False
    disabled: bool = False
    containers: list[Container] = Field(default_factory=list)


class ServingRuntime(Obj):
    """ServingRuntime (namespaced) or ClusterServingRuntime (kind says which)."""

    api_version: str = RUNTIME_API
    kind: str = "ServingRuntime"
    metadata: ObjectMeta
    spec: ServingRuntimeSpec


class TrainedModelSpec(Obj):
    """A model loaded into a multi-model InferenceService (KServe's TrainedModel, v1alpha1)."""

    inference_service: str
    model: dict[str, Any] = Field(default_factory=dict)  # storageUri, framework, memory


class TrainedModel(Obj):
    api_version: str = RUNTIME_API
    kind: str = "TrainedModel"
    metadata: ObjectMeta
    spec: TrainedModelSpec
    status: dict[str, Any] = Field(default_factory=dict)


class InferenceRouter(Obj):
    router_type: str  # Sequence | Splitter | Ensemble | Switch
    steps: list[dict[str, Any]] = Field(default_factory=list)


class InferenceGraphSpec(Obj):
    nodes: dict[str, InferenceRouter]


class InferenceGraph(Obj):
    """KServe's InferenceGraph (v1alpha1): typed here for its CRD; served by a later issue."""

    api_version: str = RUNTIME_API
    kind: str = "InferenceGraph"
    metadata: ObjectMeta
    spec: InferenceGraphSpec
    status: dict[str, Any] = Field(default_factory=dict)


KINDS = {
    "InferenceService": InferenceService,
    "ServingRuntime": ServingRuntime,
    "ClusterServingRuntime": ServingRuntime,
    "TrainedModel": TrainedModel,
}


def parse(doc: dict[str, Any]) -> InferenceService | ServingRuntime | TrainedModel:
    """A manifest dict as its typed object; raises ValueError naming the problem."""
    from pydantic import ValidationError

    kind = doc.get("kind")
    cls = KINDS.get(str(kind))
    if cls is None:
        raise ValueError(f"unsupported kind {kind!r}; expected one of {', '.join(KINDS)}")
    try:
        return cls.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{kind} {doc.get('metadata', {}).get('name', '?')}: {where}: {first['msg']}") from None
