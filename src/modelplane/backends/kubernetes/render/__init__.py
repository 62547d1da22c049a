"""Kubernetes rendering: an InferenceService → the Kubernetes objects KServe's controller would create for it, in
Standard (raw Deployment) or Knative mode. Pure: no client, no cluster; `modelplane render` and the operator
share it, after the same defaulting, validation and runtime selection as the local backend."""

from __future__ import annotations

from typing import Any

from modelplane.backends.kubernetes.config import ClusterConfig
from modelplane.backends.kubernetes.render import knative, standard
from modelplane.backends.kubernetes.render.meta import annotations, component_name, labels, metadata, top_labels
from modelplane.backends.kubernetes.render.pod import Pod, custom_pod, predictor_pod
from modelplane.control.api import ComponentExtension, InferenceService, ServingRuntime
from modelplane.control.reconciler import templates
from modelplane.control.runtimes import select_runtime
from modelplane.control.trainedmodel import config_name, is_mms
from modelplane.control.webhook import MODE_ALIASES, MODE_ANNOTATION, default, validate

MODELS_KEY = "models.json"

MODES = ("Standard", "Knative")


class RenderError(ValueError):
    """The isvc cannot be rendered in this mode (the message says what to change)."""


def mode_of(isvc: InferenceService, config: ClusterConfig) -> str:
    mode = isvc.metadata.annotations.get(MODE_ANNOTATION) or config.default_mode
    return MODE_ALIASES.get(mode, mode)


def render(
    isvc: InferenceService,
    config: ClusterConfig | None = None,
    namespaced: list[ServingRuntime] | None = None,
    cluster: list[ServingRuntime] | None = None,
    mode: str | None = None,
    traffic: dict[str, list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """Every object, in apply order (components first, then routing). `mode` overrides the isvc's annotation;
    `traffic` (Knative mode) is the reconciler's per-component traffic block."""
    config = config or ClusterConfig()
    isvc = default(isvc.model_copy(deep=True), config.default_mode)
    if mode is not None:
        if mode not in MODES:
            raise RenderError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        isvc.metadata.annotations[MODE_ANNOTATION] = mode
    validate(isvc)
    chosen = mode_of(isvc, config)
    if chosen not in MODES:
        raise RenderError(f"deploymentMode {chosen} is not rendered here: use Standard or Knative")
    if cluster is None:
        from modelplane.control.runtimes import builtin_runtimes

        cluster = builtin_runtimes()
    wanted = templates(isvc, namespaced or [], cluster)  # raises RuntimeResolutionError with KServe's reason
    components: dict[str, ComponentExtension] = {"predictor": isvc.spec.predictor}
    for name in ("transformer", "explainer"):
        spec = getattr(isvc.spec, name)
        if spec is not None and name in wanted:
            components[name] = spec
    out: list[dict[str, Any]] = []
    for name, spec in components.items():
        pod, lbls = _pod(isvc, name, spec, wanted[name], namespaced or [], cluster, config)
        annos = annotations(isvc, spec)
        if chosen == "Standard":
            full = component_name(isvc, name)
            out.append(standard.deployment(isvc, full, spec, pod, lbls, annos))
            out.append(standard.service(isvc, full, pod, lbls, annos))
            scaler = standard.autoscaler(isvc, full, spec, lbls, annos, config)
            if scaler is not None:
                out.append(scaler)
        else:
            out.append(knative.knative_service(isvc, name, spec, pod, lbls, annos, (traffic or {}).get(name)))
    if is_mms(isvc) and isvc.spec.predictor.model is not None:  # its TrainedModels' list (the operator fills it)
        out.append(model_config(isvc))
    if chosen == "Standard":
        out += standard.routes(isvc, components, config)
    else:
        out += knative.top_level(isvc, components, config)
    return out


def model_config(isvc: InferenceService) -> dict[str, Any]:
    """KServe's model list of a multi-model InferenceService, empty: owned by it, labelled with its name."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(isvc, config_name(isvc.metadata.name), top_labels(isvc), {}),
        "data": {MODELS_KEY: "[]"},
    }


def _pod(
    isvc: InferenceService,
    name: str,
    spec: ComponentExtension,
    template: dict[str, Any],
    namespaced: list[ServingRuntime],
    cluster: list[ServingRuntime],
    config: ClusterConfig,
) -> tuple[Pod, dict[str, str]]:
    lbls = labels(isvc, name, spec)
    predictor = isvc.spec.predictor
    if name == "predictor" and predictor.model is not None:
        selected = select_runtime(predictor.model, isvc.metadata.namespace, namespaced, cluster)
        lbls = {**selected.runtime.metadata.labels, **lbls}
        return predictor_pod(isvc, selected, template, config), lbls
    return custom_pod(isvc, spec, name, config), lbls  # type: ignore[arg-type]


__all__ = ["MODELS_KEY", "MODES", "RenderError", "mode_of", "model_config", "render"]
