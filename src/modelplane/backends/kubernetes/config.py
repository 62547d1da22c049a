"""Kubernetes backend: the cluster-wide settings KServe keeps in the `inferenceservice-config` ConfigMap (ingress,
storage initializer, agent, deployment mode), read from that ConfigMap's JSON values with KServe's key names."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

from modelplane import __version__

CONFIGMAP = "inferenceservice-config"
IMAGE = "ghcr.io/modelplane/modelplane"


@dataclass(frozen=True, slots=True)
class Ingress:
    """KServe's `ingress` key."""

    ingressDomain: str = "example.com"
    domainTemplate: str = "{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}"
    urlScheme: str = "http"
    ingressClassName: str = "istio"
    enableGatewayApi: bool = False
    kserveIngressGateway: str = "kserve/kserve-ingress-gateway"
    disableIngressCreation: bool = False
    disableIstioVirtualHost: bool = False
    pathTemplate: str = ""
    ingressGateway: str = "knative-serving/knative-ingress-gateway"
    localGateway: str = "knative-serving/knative-local-gateway"
    localGatewayService: str = "knative-local-gateway.istio-system.svc.cluster.local"
    additionalIngressDomains: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StorageInitializer:
    """KServe's `storageInitializer` key; the image is modelplane's (`modelplane storage-initializer`)."""

    image: str = f"{IMAGE}:{__version__}"
    memoryRequest: str = "100Mi"
    memoryLimit: str = "1Gi"
    cpuRequest: str = "100m"
    cpuLimit: str = "1"
    cpuModelcar: str = "10m"
    memoryModelcar: str = "15Mi"
    enableDirectPvcVolumeMount: bool = True


@dataclass(frozen=True, slots=True)
class Agent:
    """KServe's `agent` key: the sidecar that fronts a runtime with the payload logger and the batcher."""

    image: str = f"{IMAGE}:{__version__}"
    port: int = 9081
    memoryRequest: str = "100Mi"
    memoryLimit: str = "1Gi"
    cpuRequest: str = "100m"
    cpuLimit: str = "1"


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Everything rendering needs that is not in the objects themselves."""

    ingress: Ingress = field(default_factory=Ingress)
    storage: StorageInitializer = field(default_factory=StorageInitializer)
    agent: Agent = field(default_factory=Agent)
    default_mode: str = "Knative"  # `deploy.defaultDeploymentMode`
    server_image: str = f"{IMAGE}:{__version__}"  # what the built-in runtimes run
    hpa_version: str = "v2"  # autoscaling/v2, or v2beta2 where API discovery shows no v2 (Kubernetes < 1.23)

    @classmethod
    def from_configmap(cls, data: dict[str, str], **overrides: Any) -> ClusterConfig:
        """From the ConfigMap's `data` (each key a JSON object, as KServe writes it); unknown keys are ignored."""
        ingress = _section(Ingress, data.get("ingress"))
        storage = _section(StorageInitializer, data.get("storageInitializer"))
        agent = _section(Agent, data.get("agent"))
        deploy = json.loads(data["deploy"]) if data.get("deploy") else {}
        mode = str(deploy.get("defaultDeploymentMode", "Knative"))
        mode = {"RawDeployment": "Standard", "Serverless": "Knative"}.get(mode, mode)
        return replace(cls(ingress, storage, agent, mode), **overrides)


def _section(kind: type[Any], text: str | None) -> Any:
    if not text:
        return kind()
    values = json.loads(text)
    if not isinstance(values, dict):
        raise ValueError(f"{CONFIGMAP}: {kind.__name__} must be a JSON object")
    known = {f.name: f for f in fields(kind)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            continue
        default = known[key].default
        if isinstance(default, bool):
            value = value if isinstance(value, bool) else str(value).lower() == "true"
        elif isinstance(default, int):
            value = int(value)
        elif isinstance(default, tuple):
            value = tuple(value or ())
        out[key] = value
    return kind(**out)
