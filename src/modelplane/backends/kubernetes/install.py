"""Kubernetes backend: what `kubectl apply -k config/default` installs — the CRDs, the operator's namespace,
service account, RBAC and Deployment, the `inferenceservice-config` ConfigMap and the built-in
ClusterServingRuntimes — generated here so that config/ never drifts from the code (a test compares them)."""

from __future__ import annotations

from typing import Any

from modelplane import __version__
from modelplane.backends.kubernetes.config import IMAGE
from modelplane.backends.kubernetes.crds import crds
from modelplane.control.runtimes import builtin_runtimes

NAMESPACE = "modelplane-system"
NAME = "modelplane-operator"
WEBHOOK_SERVICE = "modelplane-webhook"
WEBHOOK_PORT = 9443


def runtimes(image: str = f"{IMAGE}:{__version__}") -> list[dict[str, Any]]:
    """KServe's built-in ClusterServingRuntimes (sklearn, xgboost, lightgbm), running modelplane's image."""
    out = []
    for rt in builtin_runtimes():
        doc = rt.dump()
        doc.pop("status", None)
        doc["metadata"] = {"name": rt.metadata.name, "annotations": rt.metadata.annotations}
        for container in doc["spec"]["containers"]:
            container["image"] = image
            container["resources"] = {
                "requests": {"cpu": "1", "memory": "2Gi"},
                "limits": {"cpu": "1", "memory": "2Gi"},
            }
        out.append(doc)
    return out


def rbac() -> list[dict[str, Any]]:
    rules = [
        {
            "apiGroups": ["serving.kserve.io"],
            "resources": [
                "inferenceservices",
                "servingruntimes",
                "clusterservingruntimes",
                "inferencegraphs",
            ],
            "verbs": ["get", "list", "watch"],
        },
        {  # a TrainedModel whose InferenceService is gone is deleted, as KServe's controller does
            "apiGroups": ["serving.kserve.io"],
            "resources": ["trainedmodels"],
            "verbs": ["get", "list", "watch", "delete"],
        },
        {
            "apiGroups": ["serving.kserve.io"],
            "resources": ["inferenceservices/status", "trainedmodels/status", "inferencegraphs/status"],
            "verbs": ["get", "patch", "update"],
        },
        {
            "apiGroups": ["apps"],
            "resources": ["deployments", "controllerrevisions"],
            "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
        },
        {
            "apiGroups": [""],
            "resources": ["services"],
            "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
        },
        {  # the inferenceservice-config ConfigMap is read; a multi-model predictor's model list is written
            "apiGroups": [""],
            "resources": ["configmaps"],
            "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
        },
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
        {  # kopf keeps the two webhook configurations (and their CA bundle) in step with the operator
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"],
            "verbs": ["get", "list", "watch", "create", "patch", "update"],
        },
    ]
    for group, resource in (
        ("autoscaling", "horizontalpodautoscalers"),
        ("keda.sh", "scaledobjects"),
        ("networking.k8s.io", "ingresses"),
        ("gateway.networking.k8s.io", "httproutes"),
        ("serving.knative.dev", "services"),
        ("networking.istio.io", "virtualservices"),
    ):
        rules.append(
            {
                "apiGroups": [group],
                "resources": [resource],
                "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
            }
        )
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, "namespace": NAMESPACE}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": NAME},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": NAME},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
        },
    ]


def manager(image: str = f"{IMAGE}:{__version__}") -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": NAME}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "inferenceservice-config", "namespace": NAMESPACE},
            "data": {
                "ingress": '{"ingressDomain": "example.com", "ingressClassName": "istio", "enableGatewayApi": false}',
                "deploy": '{"defaultDeploymentMode": "Knative"}',
                "storageInitializer": f'{{"image": "{image}"}}',
                "agent": f'{{"image": "{image}"}}',
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},  # one operator at a time (kopf runs standalone)
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": NAME,
                        "containers": [
                            {
                                "name": "operator",
                                "image": image,
                                "command": ["modelplane", "operator"],
                                "args": [
                                    "--config-namespace",
                                    NAMESPACE,
                                    "--webhook-port",
                                    str(WEBHOOK_PORT),
                                    "--webhook-host",
                                    f"{WEBHOOK_SERVICE}.{NAMESPACE}.svc",
                                ],
                                "ports": [{"name": "webhook", "containerPort": WEBHOOK_PORT, "protocol": "TCP"}],
                                "resources": {
                                    "requests": {"cpu": "100m", "memory": "256Mi"},
                                    "limits": {"cpu": "1", "memory": "1Gi"},
                                },
                                "securityContext": {
                                    "runAsNonRoot": True,
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                            }
                        ],
                    },
                },
            },
        },
    ]


def webhook_service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": WEBHOOK_SERVICE, "namespace": NAMESPACE},
        "spec": {
            "selector": {"app.kubernetes.io/name": NAME},
            "ports": [{"name": "https", "port": WEBHOOK_PORT, "targetPort": WEBHOOK_PORT, "protocol": "TCP"}],
        },
    }


def tree() -> dict[str, list[dict[str, Any]]]:
    """config/<path> -> the objects in that file."""
    files: dict[str, list[dict[str, Any]]] = {}
    for crd in crds():
        files[f"crd/{crd['metadata']['name']}.yaml"] = [crd]
    files["rbac/rbac.yaml"] = rbac()
    files["manager/manager.yaml"] = [*manager(), webhook_service()]
    for rt in runtimes():
        files[f"runtimes/{rt['metadata']['name']}.yaml"] = [rt]
    return files


def kustomizations(files: list[str]) -> dict[str, dict[str, Any]]:
    dirs = sorted({f.split("/")[0] for f in files})
    out = {
        f"{d}/kustomization.yaml": {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": sorted(f.split("/", 1)[1] for f in files if f.startswith(f"{d}/")),
        }
        for d in dirs
    }
    out["default/kustomization.yaml"] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"../{d}" for d in dirs],
    }
    return out
