"""Kubernetes rendering, Knative mode: a Knative Service per component (revision template, KPA annotations, the
traffic block), the Istio VirtualService that routes the isvc's host to its components, and the ExternalName
Service that makes the isvc's cluster-local name resolve."""

from __future__ import annotations

from typing import Any

from modelplane.backends.kubernetes.config import ClusterConfig
from modelplane.backends.kubernetes.render.meta import component_name, metadata, top_labels
from modelplane.backends.kubernetes.render.pod import Pod
from modelplane.control.api import ComponentExtension, InferenceService
from modelplane.control.autoscaling.config import LLM_METRICS

KPA = "kpa.autoscaling.knative.dev"
EXPLAIN_REGEX = r"^/v1/models/[\w-]+:explain$"
# what Knative's webhook refuses in a revision template (the API server's pod defaults)
_NOT_IN_KNATIVE = ("dnsPolicy", "restartPolicy", "schedulerName", "terminationGracePeriodSeconds")


def knative_service(
    isvc: InferenceService,
    component: str,
    spec: ComponentExtension,
    pod: Pod,
    lbls: dict[str, str],
    annos: dict[str, str],
    traffic: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """`traffic`: Knative's block as the reconciler computed it (latest / prev tags, canary percent); without it,
    all traffic to the latest revision."""
    name = component_name(isvc, component)
    template_annos = dict(annos)
    template_annos.setdefault("autoscaling.knative.dev/class", KPA)
    template_annos["autoscaling.knative.dev/min-scale"] = str(spec.min_replicas if spec.min_replicas is not None else 1)
    if spec.max_replicas:
        template_annos["autoscaling.knative.dev/max-scale"] = str(spec.max_replicas)
    if spec.scale_target is not None:
        template_annos["autoscaling.knative.dev/target"] = str(spec.scale_target)
    if spec.scale_metric in LLM_METRICS:  # read from the engines by the local autoscaler; Knative has no such metric
        raise ValueError(
            f"scaleMetric {spec.scale_metric} is served by the local platform's autoscaler only; on Kubernetes "
            "scale LLM servers on concurrency (Knative) or with KEDA on the modelplane_llm_* metrics"
        )
    if spec.scale_metric:
        template_annos["autoscaling.knative.dev/metric"] = spec.scale_metric
    podspec = {k: v for k, v in pod.spec.items() if k not in _NOT_IN_KNATIVE}
    server = podspec["containers"][0]
    server["ports"] = (server.get("ports") or [])[:1]  # Knative serves one port per revision
    if not server["ports"]:
        del server["ports"]
    for probe in ("readinessProbe", "livenessProbe"):  # Knative probes the serving port itself
        action = (server.get(probe) or {}).get("httpGet") or (server.get(probe) or {}).get("tcpSocket")
        if action is not None:
            action.pop("port", None)
    template_spec: dict[str, Any] = dict(podspec)
    if spec.container_concurrency is not None:
        template_spec["containerConcurrency"] = spec.container_concurrency
    if spec.timeout is not None:
        template_spec["timeoutSeconds"] = spec.timeout
        template_spec["responseStartTimeoutSeconds"] = spec.timeout
    template_labels = {k: v for k, v in lbls.items() if k != "networking.knative.dev/visibility"}
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": metadata(isvc, name, lbls, {}),
        "spec": {
            "template": {"metadata": {"labels": template_labels, "annotations": template_annos}, "spec": template_spec},
            "traffic": traffic or [{"latestRevision": True, "percent": 100}],
        },
    }


def top_level(isvc: InferenceService, components: dict[str, ComponentExtension], config: ClusterConfig) -> list[dict]:
    """The Istio VirtualService `{isvc}` (unless disabled) and the ExternalName Service `{isvc}`."""
    ingress = config.ingress
    ns, name = isvc.metadata.namespace, isvc.metadata.name
    out: list[dict[str, Any]] = []
    local = f"{name}.{ns}.svc.cluster.local"
    if not ingress.disableIstioVirtualHost:
        public = f"{name}.{ns}.{ingress.ingressDomain}"
        hosts = [public, local, *(f"{name}.{ns}.{d}" for d in ingress.additionalIngressDomains)]
        gateways = [ingress.ingressGateway, ingress.localGateway]
        if isvc.metadata.labels.get("networking.kserve.io/visibility") == "cluster-local":
            hosts, gateways = [local], [ingress.localGateway]

        def route(component: str) -> list[dict[str, Any]]:
            target = f"{component_name(isvc, component)}.{ns}.svc.cluster.local"
            return [
                {
                    "destination": {"host": ingress.localGatewayService, "port": {"number": 80}},
                    "headers": {"request": {"set": {"Host": target}}},
                    "weight": 100,
                }
            ]

        http: list[dict[str, Any]] = []
        if "explainer" in components:
            http.append(
                {
                    "match": [{"uri": {"regex": EXPLAIN_REGEX}, "gateways": [g]} for g in gateways],
                    "route": route("explainer"),
                }
            )
        entry = "transformer" if "transformer" in components else "predictor"
        http.append({"match": [{"gateways": [g]} for g in gateways], "route": route(entry)})
        out.append(
            {
                "apiVersion": "networking.istio.io/v1beta1",
                "kind": "VirtualService",
                "metadata": metadata(isvc, name, top_labels(isvc), {}),
                "spec": {"hosts": hosts, "gateways": gateways, "http": http},
            }
        )
    out.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(isvc, name, top_labels(isvc), {}),
            "spec": {"type": "ExternalName", "externalName": ingress.localGatewayService, "sessionAffinity": "None"},
        }
    )
    return out
