"""Kubernetes rendering: a component's pod — the server container (runtime merged with the isvc's), the model
volume (storage-initializer into an emptyDir, a PVC mounted directly, or an OCI modelcar), probes, the agent."""

from __future__ import annotations

import copy
import shlex
from dataclasses import dataclass
from typing import Any

from modelplane.backends.kubernetes.config import ClusterConfig
from modelplane.backends.server_flags import server_flags
from modelplane.control.api import (
    ComponentExtension,
    Container,
    CustomComponentSpec,
    InferenceService,
    PredictorSpec,
)
from modelplane.control.runtimes import Selected, server_container
from modelplane.control.trainedmodel import cache_flag, config_name, is_mms

MODEL_MOUNT = "/mnt/models"
PROVISION_VOLUME = "kserve-provision-location"
PVC_VOLUME = "kserve-pvc-source"
CONFIG_VOLUME = "model-config"
CONFIG_MOUNT = "/mnt/configs"
SERVER = "kserve-container"
GRPC_PORT = 8081
AGENT_MODEL = "modelplane.model.transformer:Passthrough"
# KServe's ComponentExtensionSpec and PredictorSpec fields that are not PodSpec fields (the rest of a component
# is its pod: serviceAccountName, nodeSelector, tolerations, volumes, …).
NOT_POD = {
    "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType", "autoScaling",
    "containerConcurrency", "timeout", "canaryTrafficPercent", "logger", "batcher", "labels", "annotations",
    "deploymentStrategy", "model", "containers", "workerSpec", "storageUris", "storage", "name",
}  # fmt: skip
MODEL_ONLY = {"modelFormat", "runtime", "storageUri", "protocolVersion", "runtimeVersion", "storage"}


@dataclass(frozen=True, slots=True)
class Pod:
    spec: dict[str, Any]
    port: int  # the server container's first port (KServe: 8080 when it declares none)
    agent: bool  # the agent sidecar fronts the server (the Service targets the agent's port)


def predictor_pod(isvc: InferenceService, selected: Selected, template: dict[str, Any], config: ClusterConfig) -> Pod:
    """The predictor's pod: the runtime's containers with the isvc's model container merged into kserve-container."""
    predictor = isvc.spec.predictor
    model = predictor.model
    assert model is not None
    runtime_containers = selected.runtime.spec.containers
    base = next((c for c in runtime_containers if c.name == SERVER), runtime_containers[0])
    ours = _is_ours(base, config)
    merged = server_container(isvc, selected)  # args and env merged and templated as the local backend does
    server: dict[str, Any] = {**_dump(base), **{k: v for k, v in _dump(model).items() if k not in MODEL_ONLY}}
    server.update(_dump(merged))
    server["name"] = SERVER
    if ours:
        server["image"] = config.server_image
        server["args"] = [*server.get("args", []), *server_flags(isvc, "predictor", template)]
        _http_probes(server)
    others = [_dump(c) for c in runtime_containers if c is not base]
    pod = _pod_fields(selected.runtime.spec.model_extra or {}, predictor)
    pod["containers"] = [server, *others]
    agent = not ours and (predictor.logger is not None or predictor.batcher is not None)
    if agent:
        pod["containers"].append(_agent(isvc, predictor, "predictor", _port(server), config))
    if model.storage_uri:
        _model_volume(pod, model.storage_uri, config)
    elif is_mms(isvc):
        _puller(pod, isvc, _port(server), config)
        if ours and not any(str(a).startswith("--model-cache-bytes") for a in server["args"]):
            server["args"].append(cache_flag(isvc))
    return Pod(_finish(pod, isvc), _port(server), agent)


def custom_pod(
    isvc: InferenceService, component: CustomComponentSpec | PredictorSpec, name: str, config: ClusterConfig
) -> Pod:
    """A transformer, explainer or container predictor: the isvc's containers as written, KServe's defaults, and
    the agent in front when the component logs payloads or batches."""
    containers = [_dump(c) for c in component.containers or []]
    main = next((c for c in containers if c.get("name") == SERVER), containers[0])
    main.setdefault("name", SERVER)
    pod = _pod_fields({}, component)
    pod["containers"] = containers
    if name == "transformer" and isvc.spec.predictor is not None:
        args = main.setdefault("args", [])
        if not any(a.startswith("--predictor_host") for a in args):
            args.append(f"--predictor_host={isvc.metadata.name}-predictor.{isvc.metadata.namespace}")
        if not any(a.startswith("--model_name") for a in args):
            args.append(f"--model_name={isvc.metadata.name}")
    agent = component.logger is not None or component.batcher is not None
    if agent:
        containers.append(_agent(isvc, component, name, _port(main), config))
    return Pod(_finish(pod, isvc), _port(main), agent)


def _dump(c: Container | Any) -> dict[str, Any]:
    return copy.deepcopy(c.model_dump(by_alias=True, exclude_none=True, mode="json"))


def _is_ours(base: Container, config: ClusterConfig) -> bool:
    """A built-in runtime: modelplane's own server (image recorded as modelplane/<server>, no command)."""
    return not base.command and (base.image or "").startswith(("modelplane/", config.server_image.split(":")[0]))


def _pod_fields(runtime: dict[str, Any], component: Any) -> dict[str, Any]:
    """PodSpec fields from the runtime's spec, then the component's own (the component wins)."""
    pod = {k: copy.deepcopy(v) for k, v in runtime.items() if k in POD_FIELDS}
    for key, value in (component.model_extra or {}).items():
        if key not in NOT_POD:
            pod[key] = copy.deepcopy(value)
    return pod


POD_FIELDS = {
    "affinity", "nodeSelector", "tolerations", "volumes", "imagePullSecrets", "serviceAccountName",
    "securityContext", "priorityClassName", "hostIPC", "dnsPolicy", "schedulerName", "initContainers",
}  # fmt: skip


def _port(container: dict[str, Any]) -> int:
    ports = container.get("ports") or []
    return int(ports[0]["containerPort"]) if ports else 8080


def _http_probes(server: dict[str, Any]) -> None:
    """modelplane's server answers the V2 health endpoints; probe them rather than the port."""
    port = _port(server)
    server.setdefault(
        "readinessProbe",
        {"httpGet": {"path": "/v2/health/ready", "port": port}, "periodSeconds": 5, "failureThreshold": 3},
    )
    server.setdefault(
        "livenessProbe",
        {"httpGet": {"path": "/v2/health/live", "port": port}, "periodSeconds": 10, "failureThreshold": 3},
    )
    server.setdefault(
        "ports",
        [
            {"name": "http1", "containerPort": port, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},  # `modelplane serve`'s default
        ],
    )


def _mount(container: dict[str, Any], mount: dict[str, Any]) -> None:
    mounts = container.setdefault("volumeMounts", [])
    if not any(m.get("name") == mount["name"] for m in mounts):
        mounts.append(mount)


def _volume(pod: dict[str, Any], volume: dict[str, Any]) -> None:
    volumes = pod.setdefault("volumes", [])
    if not any(v.get("name") == volume["name"] for v in volumes):
        volumes.append(volume)


def _model_volume(pod: dict[str, Any], uri: str, config: ClusterConfig) -> None:
    """Where the model comes from, as KServe's storage-initializer injector arranges it."""
    server = pod["containers"][0]
    s = config.storage
    if uri.startswith("pvc://") and s.enableDirectPvcVolumeMount:
        claim, _, sub = uri.removeprefix("pvc://").partition("/")
        _volume(pod, {"name": PVC_VOLUME, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
        mount = {"name": PVC_VOLUME, "mountPath": MODEL_MOUNT, "readOnly": True}
        _mount(server, {**mount, "subPath": sub} if sub else mount)
        return
    if uri.startswith("oci://"):
        image = uri.removeprefix("oci://")
        small = {"cpu": s.cpuModelcar, "memory": s.memoryModelcar}
        resources = {"limits": small, "requests": dict(small)}
        _volume(pod, {"name": PROVISION_VOLUME, "emptyDir": {}})
        _mount(server, {"name": PROVISION_VOLUME, "mountPath": "/mnt"})
        server.setdefault("env", []).append({"name": "MODEL_INIT_MODE", "value": "async"})
        link = f"ln -sf /proc/$$$$/root/models {shlex.quote(MODEL_MOUNT)} && sleep infinity"
        pod["containers"].append(
            {
                "name": "modelcar",
                "image": image,
                "args": ["sh", "-c", link],
                "volumeMounts": [{"name": PROVISION_VOLUME, "mountPath": "/mnt"}],
                "resources": resources,
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }
        )
        check = f"echo 'Pre-fetching modelcar {image}: ' && [ -d /models ] && [ \"$$(ls -A /models)\" ]"
        pod.setdefault("initContainers", []).append(
            {
                "name": "modelcar-init",
                "image": image,
                "args": ["sh", "-c", check],
                "resources": copy.deepcopy(resources),
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }
        )
        pod["shareProcessNamespace"] = True
        return
    _volume(pod, {"name": PROVISION_VOLUME, "emptyDir": {}})
    _mount(server, {"name": PROVISION_VOLUME, "mountPath": MODEL_MOUNT, "readOnly": True})
    pod.setdefault("initContainers", []).append(
        {
            "name": "storage-initializer",
            "image": s.image,
            "command": ["modelplane", "storage-initializer"],
            "args": [uri, MODEL_MOUNT],
            "resources": {
                "limits": {"cpu": s.cpuLimit, "memory": s.memoryLimit},
                "requests": {"cpu": s.cpuRequest, "memory": s.memoryRequest},
            },
            "volumeMounts": [{"name": PROVISION_VOLUME, "mountPath": MODEL_MOUNT}],
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
    )


def _puller(pod: dict[str, Any], isvc: InferenceService, port: int, config: ClusterConfig) -> None:
    """A multi-model predictor's models, as KServe's TrainedModel support arranges them: the model list
    (ConfigMap `modelconfig-<isvc>-0`) mounted into a puller sidecar that downloads each model into an emptyDir the
    server reads, and has the server load or unload it."""
    server = pod["containers"][0]
    _volume(pod, {"name": PROVISION_VOLUME, "emptyDir": {}})
    _volume(pod, {"name": CONFIG_VOLUME, "configMap": {"name": config_name(isvc.metadata.name)}})
    _mount(server, {"name": PROVISION_VOLUME, "mountPath": MODEL_MOUNT, "readOnly": True})
    a = config.agent
    args = ["--config-dir", CONFIG_MOUNT, "--model-dir", MODEL_MOUNT, "--server", f"http://127.0.0.1:{port}"]
    pod["containers"].append(
        {
            "name": "agent",
            "image": a.image,
            "command": ["modelplane", "puller"],
            "args": args,
            "volumeMounts": [
                {"name": PROVISION_VOLUME, "mountPath": MODEL_MOUNT},
                {"name": CONFIG_VOLUME, "mountPath": CONFIG_MOUNT, "readOnly": True},
            ],
            "resources": {
                "limits": {"cpu": a.cpuLimit, "memory": a.memoryLimit},
                "requests": {"cpu": a.cpuRequest, "memory": a.memoryRequest},
            },
        }
    )


def _agent(
    isvc: InferenceService, spec: ComponentExtension, component: str, port: int, config: ClusterConfig
) -> dict[str, Any]:
    """The agent: modelplane's own server with the passthrough model, in front of a runtime that is not
    modelplane's — its payload logger and adaptive batcher for any server (KServe's agent sidecar's job)."""
    a = config.agent
    template = {
        "logger": spec.logger.dump() if spec.logger else None,
        "batcher": spec.batcher.dump() if spec.batcher else None,
    }
    args = ["--model-class", AGENT_MODEL, "--model-name", isvc.metadata.name, "--predictor_host", f"127.0.0.1:{port}"]
    args += ["--http-port", str(a.port), "--enable-grpc", "false", *server_flags(isvc, component, template)]
    return {
        "name": "agent",
        "image": a.image,
        "command": ["modelplane", "serve"],
        "args": args,
        "ports": [{"name": "http-agent", "containerPort": a.port, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": a.port}, "periodSeconds": 10},
        "resources": {
            "limits": {"cpu": a.cpuLimit, "memory": a.memoryLimit},
            "requests": {"cpu": a.cpuRequest, "memory": a.memoryRequest},
        },
    }


def _finish(pod: dict[str, Any], isvc: InferenceService) -> dict[str, Any]:
    """KServe's pod defaults: INFERENCE_SERVICE_NAME in every container, a TCP readiness probe on the server's
    first port when it has none, and the API server's own defaults written out (so a diff sees no change)."""
    pod.setdefault("dnsPolicy", "ClusterFirst")
    pod.setdefault("restartPolicy", "Always")
    pod.setdefault("terminationGracePeriodSeconds", 30)
    pod.setdefault("schedulerName", "default-scheduler")
    pod.setdefault("securityContext", {})
    for container in pod["containers"]:
        env = container.setdefault("env", [])
        if not any(e.get("name") == "INFERENCE_SERVICE_NAME" for e in env):
            env.append({"name": "INFERENCE_SERVICE_NAME", "value": isvc.metadata.name})
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("imagePullPolicy", "IfNotPresent")
        if container.get("name") in (SERVER, "transformer-container") and "readinessProbe" not in container:
            container["readinessProbe"] = {
                "tcpSocket": {"port": _port(container)},
                "timeoutSeconds": 1,
                "periodSeconds": 10,
                "successThreshold": 1,
                "failureThreshold": 3,
            }
    for container in pod.get("initContainers", []):
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("imagePullPolicy", "IfNotPresent")
    return pod
