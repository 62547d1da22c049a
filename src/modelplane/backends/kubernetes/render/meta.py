"""Kubernetes rendering: names, labels, annotations and hosts as KServe gives them to every component object."""

from __future__ import annotations

import re
from typing import Any

from modelplane.backends.kubernetes.config import Ingress
from modelplane.control.api import ComponentExtension, InferenceService

ISVC_LABEL = "serving.kserve.io/inferenceservice"
# isvc annotations never copied to what it renders (KServe's disallowed list)
DISALLOWED = {
    "autoscaling.knative.dev/min-scale",
    "autoscaling.knative.dev/max-scale",
    "internal.serving.kserve.io/storage-initializer-sourceuri",
    "kubectl.kubernetes.io/last-applied-configuration",
    "modelFormat",
}
_TEMPLATE = re.compile(r"\{\{\s*\.(Name|Namespace|IngressDomain|Annotations\.([\w./-]+)|Labels\.([\w./-]+))\s*\}\}")


def component_name(isvc: InferenceService, component: str) -> str:
    return f"{isvc.metadata.name}-{component}"


def app_label(name: str) -> str:
    """The selector label of a raw Deployment and its Service (KServe's `app: isvc.<name>`)."""
    return f"isvc.{name}"


def labels(isvc: InferenceService, component: str, spec: ComponentExtension) -> dict[str, str]:
    return {
        **isvc.metadata.labels,
        **(spec.labels or {}),
        ISVC_LABEL: isvc.metadata.name,
        "component": component,
    }


def annotations(isvc: InferenceService, spec: ComponentExtension) -> dict[str, str]:
    merged = {**isvc.metadata.annotations, **(spec.annotations or {})}
    return {k: v for k, v in merged.items() if k not in DISALLOWED}


def owner(isvc: InferenceService) -> list[dict[str, Any]]:
    """The owner reference that lets the garbage collector delete what an isvc rendered (needs its uid)."""
    if not isvc.metadata.uid:
        return []
    return [
        {
            "apiVersion": isvc.api_version,
            "kind": "InferenceService",
            "name": isvc.metadata.name,
            "uid": isvc.metadata.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def metadata(isvc: InferenceService, name: str, lbls: dict[str, str], annos: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": isvc.metadata.namespace, "labels": dict(lbls)}
    if annos:
        meta["annotations"] = dict(annos)
    refs = owner(isvc)
    if refs:
        meta["ownerReferences"] = refs
    return meta


def host(ingress: Ingress, isvc: InferenceService, name: str) -> str:
    """A host from KServe's domainTemplate (default `{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}`)."""

    def one(m: re.Match[str]) -> str:
        key = m.group(1)
        if key == "Name":
            return name
        if key == "Namespace":
            return isvc.metadata.namespace
        if key == "IngressDomain":
            return ingress.ingressDomain
        if m.group(2) is not None:
            return isvc.metadata.annotations.get(m.group(2), "")
        return isvc.metadata.labels.get(m.group(3) or "", "")

    return _TEMPLATE.sub(one, ingress.domainTemplate)


def top_labels(isvc: InferenceService) -> dict[str, str]:
    """Labels of the objects that route to the whole isvc (Ingress, routes, VirtualService)."""
    return {**isvc.metadata.labels, ISVC_LABEL: isvc.metadata.name}
