"""Control plane: strict field validation, as `kubectl apply` does by default — a field the KServe or Kubernetes
schema does not define is reported with its path and the closest real name (`storageURI` -> `storageUri`).

The typed models in api.py hold only what the control plane reads; the rest of each KServe / Kubernetes type's
fields are listed here, so that a known field is never reported and an unknown one always is."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel

from modelplane.control import api

_META = {"resourceVersion", "generateName", "ownerReferences", "finalizers", "managedFields", "selfLink"}
_META |= {"deletionTimestamp", "deletionGracePeriodSeconds"}
_CONTAINER = {"workingDir", "ports", "envFrom", "resizePolicy", "restartPolicy", "volumeMounts", "volumeDevices"}
_CONTAINER |= {"livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "terminationMessagePath"}
_CONTAINER |= {"terminationMessagePolicy", "imagePullPolicy", "securityContext", "stdin", "stdinOnce", "tty"}
_POD = {"volumes", "initContainers", "containers", "ephemeralContainers", "restartPolicy", "nodeSelector"}
_POD |= {"terminationGracePeriodSeconds", "activeDeadlineSeconds", "dnsPolicy", "serviceAccountName"}
_POD |= {"serviceAccount", "automountServiceAccountToken", "nodeName", "hostNetwork", "hostPID", "hostIPC"}
_POD |= {"shareProcessNamespace", "securityContext", "imagePullSecrets", "hostname", "subdomain", "affinity"}
_POD |= {"schedulerName", "tolerations", "hostAliases", "priorityClassName", "priority", "dnsConfig"}
_POD |= {"readinessGates", "runtimeClassName", "enableServiceLinks", "preemptionPolicy", "overhead", "os"}
_POD |= {"topologySpreadConstraints", "setHostnameAsFQDN", "hostUsers", "schedulingGates", "resourceClaims"}
_COMPONENT = _POD | {"scaleMetricType", "deploymentStrategy", "autoScaling", "workerSpec", "storageUris"}
# fields each type has beyond those api.py types (KServe's v1beta1 / v1alpha1 Go types, Kubernetes core/v1)
EXTRA: dict[type[BaseModel], set[str]] = {
    api.ObjectMeta: _META,
    api.EnvVar: {"valueFrom"},
    api.Container: _CONTAINER,
    api.PredictorExtension: _CONTAINER | {"storage"},
    api.ModelSpec: _CONTAINER | {"storage"},
    api.LoggerSpec: {"storage"},
    api.ComponentExtension: _COMPONENT,
    api.PredictorSpec: _COMPONENT | {"model"},
    api.CustomComponentSpec: _COMPONENT | {"art"},
    api.ServingRuntimeSpec: _POD
    | {"labels", "annotations", "builtInAdapter", "replicas", "grpcEndpoint"}
    | {"grpcDataEndpoint", "httpDataEndpoint", "storageHelper", "workerSpec", "modelSizeRange"},
}
MODES = ("Strict", "Warn", "Ignore")  # Kubernetes' fieldValidation values


def unknown_fields(doc: dict[str, Any], model: type[BaseModel]) -> list[str]:
    """One message per field `model`'s schema does not define, with its path and the closest known name."""
    problems: list[str] = []
    _walk(doc, model, "", problems)
    return problems


def _known(model: type[BaseModel]) -> dict[str, Any]:
    """Wire name -> annotation of every typed field, plus the untyped names (annotation None)."""
    hints = typing.get_type_hints(model)
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        out[field.alias or name] = hints.get(name)
    for name in EXTRA.get(model, ()):
        out.setdefault(name, None)
    return out


def _walk(value: Any, model: type[BaseModel], path: str, problems: list[str]) -> None:
    if not isinstance(value, dict):
        return
    known = _known(model)
    lower = {k.lower(): k for k in known}
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in known:
            guess = lower.get(str(key).lower()) or next(iter(difflib.get_close_matches(str(key), known, 1, 0.75)), None)
            hint = f', did you mean "{guess}"?' if guess else ""
            problems.append(f'unknown field "{where}"{hint}')
            continue
        _descend(known[key], item, where, problems)


def _descend(annotation: Any, item: Any, where: str, problems: list[str]) -> None:
    """Walk into a field's value when its annotation is a model, a list of models or an optional of either."""
    if annotation is None:
        return
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        _descend(args[0], item, where, problems)
    elif origin is list and args and isinstance(item, list):
        for i, element in enumerate(item):
            _descend(args[0], element, f"{where}[{i}]", problems)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        _walk(item, annotation, where, problems)
