"""Control plane: KServe's mutating (defaulting) and validating webhooks for InferenceService, same rules and
messages."""

from __future__ import annotations

import re

from modelplane.control.api import FRAMEWORKS, InferenceService, ModelFormat, ModelSpec, PredictorSpec
from modelplane.control.autoscaling.config import AutoscalerConfig, resolve

MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
MODE_ALIASES = {"RawDeployment": "Standard", "Serverless": "Knative"}
MODES = ("Standard", "Knative", "ModelMesh")
AUTOSCALER_ANNOTATION = "serving.kserve.io/autoscalerClass"
AUTOSCALER_CLASSES = ("hpa", "keda", "external", "none")
V2_FRAMEWORKS = ("triton", "onnx", "huggingface")
NAME_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
NAME_RE = re.compile(f"^{NAME_FMT}$")
PREDICTOR_FIELDS = ["SKLearn", "XGBoost", "Tensorflow", "PyTorch", "Triton", "ONNX", "HuggingFace", "PMML"]
PREDICTOR_FIELDS += ["LightGBM", "Paddle", "Model", "PodSpec"]


class ValidationError(ValueError):
    """The object is refused, with KServe's message."""


def default(isvc: InferenceService, default_mode: str = "Knative") -> InferenceService:
    """Apply KServe's defaulting in place and return the object."""
    annotations = isvc.metadata.annotations
    mode = annotations.get(MODE_ANNOTATION)
    if mode in MODE_ALIASES:
        annotations[MODE_ANNOTATION] = MODE_ALIASES[mode]
    elif mode is None and default_mode in ("Standard", "ModelMesh"):
        annotations[MODE_ANNOTATION] = default_mode
    predictor = isvc.spec.predictor
    for framework in FRAMEWORKS:
        legacy = getattr(predictor, framework)
        if legacy is None or predictor.model is not None:
            continue
        fields = legacy.model_dump(exclude_none=True)
        predictor.model = ModelSpec(model_format=ModelFormat(name=framework), **fields)
        setattr(predictor, framework, None)
        if framework in V2_FRAMEWORKS and predictor.model.protocol_version is None:
            predictor.model.protocol_version = "v2"
    model = predictor.model
    if model is not None:
        if model.model_format.name in ("triton", "vLLM") and model.protocol_version is None:
            model.protocol_version = "v2"
        annotations["modelFormat"] = model.model_format.name
    return isvc


def implementations(predictor: PredictorSpec) -> list[str]:
    found = [f for f in FRAMEWORKS if getattr(predictor, f) is not None]
    if predictor.model is not None:
        found.append("model")
    if predictor.containers:
        found.append("containers")
    return found


def validate(isvc: InferenceService, old: InferenceService | None = None, max_scale_limit: int = 0) -> None:
    """Raise ValidationError as KServe's validating webhook would (create, or update when `old` is given);
    `max_scale_limit` is the platform's ceiling on replica counts (Knative's max-scale-limit, 0: none)."""
    name = isvc.metadata.name
    if not NAME_RE.match(name):
        raise ValidationError(
            f'The InferenceService "{name}" is invalid: a InferenceService name must consist of lower case '
            "alphanumeric characters or '-', and must start with alphabetical character. "
            f'(e.g. "my-name" or "abc-123", regex used for validation is \'{NAME_FMT}\')'
        )
    annotations = isvc.metadata.annotations
    autoscaler = annotations.get(AUTOSCALER_ANNOTATION)
    if autoscaler is not None and autoscaler not in AUTOSCALER_CLASSES:
        raise ValidationError(f"[{autoscaler}] is not a supported autoscaler class type")
    mode = annotations.get(MODE_ANNOTATION)
    if mode is not None and MODE_ALIASES.get(mode, mode) not in MODES:
        raise ValidationError(f"Invalid deployment mode {mode}; must be one of {', '.join(MODES)}")
    if old is not None:
        before = old.status.get("deploymentMode") or old.metadata.annotations.get(MODE_ANNOTATION)
        if before and mode and MODE_ALIASES.get(mode, mode) != MODE_ALIASES.get(before, before):
            raise ValidationError("deploymentMode cannot be changed")
    predictor = isvc.spec.predictor
    for framework in FRAMEWORKS:
        legacy = getattr(predictor, framework)
        if legacy is not None and legacy.name:
            raise ValidationError("the 'name' field is not allowed in standard predictor")
    if predictor.model is not None and predictor.model.name:
        raise ValidationError("the 'name' field is not allowed in standard predictor")
    if len(implementations(predictor)) != 1:
        raise ValidationError(f"Exactly one of [{', '.join(PREDICTOR_FIELDS)}] must be specified in PredictorSpec")
    for kind, component in (("TransformerSpec", isvc.spec.transformer), ("ExplainerSpec", isvc.spec.explainer)):
        if component is not None and not component.containers:
            raise ValidationError(f"Exactly one of [PodSpec] must be specified in {kind}")
    for component in (predictor, isvc.spec.transformer, isvc.spec.explainer):
        if component is None:
            continue
        if component.container_concurrency is not None and component.container_concurrency < 0:
            raise ValidationError("Parallelism cannot be less than 0.")
        low = 1 if component.min_replicas is None else component.min_replicas
        high = component.max_replicas or 0
        if low < 0:
            raise ValidationError("MinReplicas cannot be less than 0.")
        if high < 0:
            raise ValidationError("MaxReplicas cannot be less than 0.")
        if low > high and high != 0:
            raise ValidationError("MinReplicas cannot be greater than MaxReplicas.")
        if max_scale_limit and max(low, high) > max_scale_limit:
            raise ValidationError(
                f"replica count {max(low, high)} is above the platform's max-scale-limit of {max_scale_limit}"
            )
        if component.timeout is not None and component.timeout <= 0:
            raise ValidationError("timeout must be a positive number of seconds")
        if component.logger is not None and component.logger.mode not in ("all", "request", "response"):
            raise ValidationError("Invalid logger type")
        percent = component.canary_traffic_percent
        if percent is not None and not 0 <= percent <= 100:
            raise ValidationError("canaryTrafficPercent must be between 0 and 100")
        fields = {
            "minReplicas": component.min_replicas,
            "maxReplicas": component.max_replicas,
            "scaleTarget": component.scale_target,
            "scaleMetric": component.scale_metric,
            "containerConcurrency": component.container_concurrency,
        }
        raw = MODE_ALIASES.get(mode or "Knative", mode or "Knative") == "Standard"
        try:  # the annotations and fields must make sense to the autoscaler with the built-in defaults
            resolve(AutoscalerConfig(), fields, {**annotations, **(component.annotations or {})}, raw)
        except ValueError as exc:
            raise ValidationError(f"invalid autoscaling settings: {exc}") from None
