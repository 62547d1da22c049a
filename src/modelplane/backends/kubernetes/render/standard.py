"""Kubernetes rendering, Standard (raw) mode: per component a Deployment, a Service and an HPA or KEDA
ScaledObject; for the isvc an Ingress or Gateway API HTTPRoutes — KServe's names, labels and defaults."""

from __future__ import annotations

from typing import Any

from modelplane.backends.kubernetes.config import ClusterConfig
from modelplane.backends.kubernetes.render.meta import app_label, component_name, host, metadata, top_labels
from modelplane.backends.kubernetes.render.pod import Pod
from modelplane.control.api import ComponentExtension, InferenceService
from modelplane.control.webhook import AUTOSCALER_ANNOTATION

EXPLAIN_PATH = r"^/v1/models/[\w-]+:explain$"
DEFAULT_TIMEOUT_S = 60


def deployment(
    isvc: InferenceService,
    name: str,
    spec: ComponentExtension,
    pod: Pod,
    lbls: dict[str, str],
    annos: dict[str, str],
) -> dict[str, Any]:
    template_labels = {**lbls, "app": app_label(name)}
    template_meta: dict[str, Any] = {"labels": template_labels}
    if annos:
        template_meta["annotations"] = dict(annos)
    body: dict[str, Any] = {
        "selector": {"matchLabels": {"app": app_label(name)}},
        "template": {"metadata": template_meta, "spec": pod.spec},
        "strategy": (spec.model_extra or {}).get("deploymentStrategy")
        or {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": 600,
    }
    if annos.get(AUTOSCALER_ANNOTATION) == "none":  # otherwise the HPA owns `replicas`
        body["replicas"] = spec.min_replicas if spec.min_replicas is not None else 1
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(isvc, name, lbls, annos), "spec": body}


def service(isvc: InferenceService, name: str, pod: Pod, lbls: dict[str, str], annos: dict[str, str]) -> dict[str, Any]:
    """Port 80 to the server's first port (the agent's when it fronts the server); further ports 1:1, gRPC ones
    marked h2c."""
    server = pod.spec["containers"][0]
    declared = server.get("ports") or []
    first_name = declared[0].get("name") if declared else None
    target = 9081 if pod.agent else pod.port
    ports: list[dict[str, Any]] = [
        {"name": first_name or name, "protocol": "TCP", "port": 80, "targetPort": target},
    ]
    for p in declared[1:]:
        entry = {"name": p.get("name"), "protocol": p.get("protocol", "TCP"), "port": p["containerPort"]}
        entry["targetPort"] = p["containerPort"]
        if any(k in (p.get("name") or "") for k in ("grpc", "h2c")):
            entry["appProtocol"] = "kubernetes.io/h2c"
        ports.append(entry)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(isvc, name, lbls, annos),
        "spec": {"selector": {"app": app_label(name)}, "ports": ports, "type": "ClusterIP"},
    }


def autoscaler(
    isvc: InferenceService,
    name: str,
    spec: ComponentExtension,
    lbls: dict[str, str],
    annos: dict[str, str],
    config: ClusterConfig,
) -> dict[str, Any] | None:
    """An HPA (autoscaling/v2, or v2beta2 on clusters without v2), a KEDA ScaledObject, or nothing for the
    `none` and `external` autoscaler classes."""
    klass = annos.get(AUTOSCALER_ANNOTATION, "hpa")
    if klass in ("none", "external"):
        return None
    low = max(1, spec.min_replicas or 1)
    high = max(spec.max_replicas or 0, low)
    resource = spec.scale_metric if spec.scale_metric in ("cpu", "memory") else "cpu"
    target = spec.scale_target if spec.scale_target else 80
    meta = metadata(isvc, name, lbls, annos)
    if klass == "keda":
        return {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": meta,
            "spec": {
                "scaleTargetRef": {"name": name},
                "minReplicaCount": spec.min_replicas if spec.min_replicas is not None else 1,
                "maxReplicaCount": high,
                "triggers": [{"type": resource, "metricType": "Utilization", "metadata": {"value": str(target)}}],
            },
        }
    metric = {"type": "Resource", "resource": {"name": resource, "target": {"type": "Utilization"}}}
    metric["resource"]["target"]["averageUtilization"] = target
    return {
        "apiVersion": f"autoscaling/{config.hpa_version}",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": low,
            "maxReplicas": high,
            "metrics": [metric],
        },
    }


def routes(isvc: InferenceService, components: dict[str, ComponentExtension], config: ClusterConfig) -> list[dict]:
    """The isvc's ingress: nothing (disabled or cluster-local), an Ingress, or Gateway API HTTPRoutes."""
    ingress = config.ingress
    if ingress.disableIngressCreation or isvc.metadata.labels.get("networking.kserve.io/visibility") == "cluster-local":
        return []
    if ingress.enableGatewayApi:
        return _http_routes(isvc, components, config)
    return [_ingress(isvc, components, config)]


def _entry(components: dict[str, ComponentExtension]) -> str:
    return "transformer" if "transformer" in components else "predictor"


def _backend(isvc: InferenceService, component: str, weight: int | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {  # group omitted: "" (core) is its default, and a 1.20 API server refuses "" here
        "kind": "Service",
        "name": component_name(isvc, component),
        "namespace": isvc.metadata.namespace,
        "port": 80,
    }
    if weight is not None:
        ref["weight"] = weight
    return ref


def _ingress(isvc: InferenceService, components: dict[str, ComponentExtension], config: ClusterConfig) -> dict:
    ingress = config.ingress
    name = isvc.metadata.name

    def rule(hostname: str, component: str) -> dict[str, Any]:
        backend = {"service": {"name": component_name(isvc, component), "port": {"number": 80}}}
        return {"host": hostname, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}

    rules = [rule(host(ingress, isvc, name), _entry(components))]
    rules += [rule(host(ingress, isvc, component_name(isvc, c)), c) for c in components]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata(isvc, name, top_labels(isvc), {}),
        "spec": {"ingressClassName": ingress.ingressClassName, "rules": rules},
    }


def _http_routes(isvc: InferenceService, components: dict[str, ComponentExtension], config: ClusterConfig) -> list:
    ingress = config.ingress
    gw_namespace, _, gw_name = ingress.kserveIngressGateway.rpartition("/")
    parent = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gw_name}
    if gw_namespace:
        parent["namespace"] = gw_namespace
    headers = {
        "type": "RequestHeaderModifier",
        "requestHeaderModifier": {
            "set": [
                {"name": "KServe-Isvc-Name", "value": isvc.metadata.name},
                {"name": "KServe-Isvc-Namespace", "value": isvc.metadata.namespace},
            ]
        },
    }

    def rule(path: str, component: str, backends: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        timeout = components[component].timeout or DEFAULT_TIMEOUT_S
        return {
            "matches": [{"path": {"type": "RegularExpression", "value": path}}],
            "filters": [headers],
            "backendRefs": backends or [_backend(isvc, component)],
            "timeouts": {"request": f"{timeout}s"},
        }

    def route(name: str, hostname: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": metadata(isvc, name, top_labels(isvc), {}),
            "spec": {"parentRefs": [parent], "hostnames": [hostname], "rules": rules},
        }

    out = []
    for component in components:
        name = component_name(isvc, component)
        out.append(route(name, host(ingress, isvc, name), [rule("^/.*$", component)]))
    top = [rule(EXPLAIN_PATH, "explainer")] if "explainer" in components else []
    top.append(rule("^/.*$", _entry(components)))
    out.append(route(isvc.metadata.name, host(ingress, isvc, isvc.metadata.name), top))
    return out
