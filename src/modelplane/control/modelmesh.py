"""Control plane: KServe's `deploymentMode: ModelMesh`, pure — such an InferenceService is one model (its concrete id
hashes the predictor's model spec) in the shared deployment of its multi-model runtime; its vmodel (the isvc's name)
moves to a new concrete model only once that one is loaded with as many copies as the old; the status
modelmesh-serving writes (modelStatus with states, copies and lastFailureInfo)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from modelplane.control.api import InferenceService, ServingRuntime
from modelplane.control.webhook import AUTOSCALER_ANNOTATION, MODE_ANNOTATION

MODE = "ModelMesh"
SERVICE = "modelmesh-serving"  # modelmesh-serving's inferenceServiceName: deployments are {SERVICE}-{runtime}
PODS_PER_RUNTIME = 2  # modelmesh-serving's podsPerRuntime default
LOCATION_CHARS = 12  # lastFailureInfo.location: the last characters of the pod (here: replica) name


@dataclass(frozen=True)
class ModelObserved:
    """One concrete model as the backend hosting it sees it."""

    pulled: bool = False  # its files are in the shared repository
    pull_error: str = ""  # pulling it failed (why)
    copies: int = 0  # ready replicas that hold it loaded
    loading: bool = False  # a copy is being loaded
    failures: dict[str, str] = field(default_factory=dict)  # replica -> why it could not load there


def is_modelmesh(isvc: InferenceService) -> bool:
    return isvc.metadata.annotations.get(MODE_ANNOTATION) == MODE


def annotated_modelmesh(metadata: dict[str, Any]) -> bool:
    """The same test on an unparsed document's metadata (a watch event, a stored document): no model validation."""
    return (metadata.get("annotations") or {}).get(MODE_ANNOTATION) == MODE


def is_shared_deployment(name: str) -> bool:
    """Whether `name` is a runtime's shared deployment ({SERVICE}-{runtime}) — or the queue key of the mesh pass."""
    return name.startswith(f"{SERVICE}-")


def concrete_id(isvc: InferenceService) -> str:
    """The model id ModelMesh registers for the isvc: `{isvc}__isvc-{hash of the predictor's model}`; a spec change
    makes a new one."""
    model = isvc.spec.predictor.model
    spec = model.dump() if model is not None else {}
    return f"{isvc.metadata.name}__isvc-{hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]}"


def deployment_name(runtime: str) -> str:
    """The runtime's shared deployment, `modelmesh-serving-{runtime}` (dots, as in `mlserver-1.x`, become dashes:
    the name is a host label and part of revision keys)."""
    return f"{SERVICE}-{re.sub(r'[^a-z0-9-]', '-', runtime.lower())}"


def shared_isvc(namespace: str, runtime: ServingRuntime) -> InferenceService:
    """The runtime's shared deployment as a multi-model InferenceService (never stored: the controller derives it
    every pass from the ModelMesh InferenceServices that use the runtime) — its replicas are the runtime's
    `replicas` or podsPerRuntime, its model cache the runtime container's memory limit."""
    spec = runtime.spec
    replicas = int(getattr(spec, "replicas", None) or PODS_PER_RUNTIME)
    container = spec.containers[0] if spec.containers else None
    model: dict[str, Any] = {
        "modelFormat": {"name": spec.supported_model_formats[0].name if spec.supported_model_formats else "custom"},
        "runtime": runtime.metadata.name,
        "protocolVersion": "v2",
    }
    if container is not None and container.resources:
        model["resources"] = container.resources
    return InferenceService.model_validate(
        {
            "metadata": {
                "name": deployment_name(runtime.metadata.name),
                "namespace": namespace,
                # a fixed podsPerRuntime, as modelmesh-serving runs it (no autoscaler)
                "annotations": {MODE_ANNOTATION: "Standard", AUTOSCALER_ANNOTATION: "none"},
            },
            "spec": {"predictor": {"minReplicas": replicas, "maxReplicas": replicas, "model": model}},
        }
    )


def refusal(isvc: InferenceService) -> str | None:
    """Why the isvc cannot be served in ModelMesh mode here (None: it can)."""
    model = isvc.spec.predictor.model
    if model is None:
        return "a ModelMesh predictor must name a model (spec.predictor.model or a framework field)"
    if not model.storage_uri:
        return "a ModelMesh predictor needs a storageUri (the `storage` key form is not supported)"
    if isvc.spec.transformer is not None or isvc.spec.explainer is not None:
        return "a transformer or explainer in front of a ModelMesh predictor is not run by modelplane"
    return None


def advance(active: str | None, target: str, seen_active: ModelObserved, seen_target: ModelObserved) -> str:
    """The vmodel's model after this pass: a new isvc points at its model at once; after a spec change the old model
    keeps serving until the new one is loaded with as many copies as the old (at least one)."""
    if active is None or active == target:
        return target
    return target if seen_target.copies >= max(1, seen_active.copies) else active


def copies_wanted(active: str, target: str, seen_active: ModelObserved, previous: dict[str, Any]) -> int:
    """How many loaded copies of `target` to ask for now: during a transition as many as the old model has;
    for a model the isvc has never seen Loaded, one (ModelMesh's loadNow); else none (it loads on demand)."""
    if active != target:
        return max(1, seen_active.copies)
    states = (previous.get("modelStatus") or {}).get("states") or {}
    before = ((previous.get("components") or {}).get("predictor") or {}).get("activeModelId")
    if before != target or states.get("activeModelState") in (None, "", "Pending", "Loading"):
        return 1
    return 0


def state(seen: ModelObserved) -> str:
    """ModelMesh's model state: Pending (not yet registered: its files are being pulled), Loading, Loaded (a copy),
    FailedToLoad, or Standby (registered, no copy: loads on its first request)."""
    if seen.pull_error:
        return "FailedToLoad"
    if not seen.pulled:
        return "Pending"
    if seen.copies:
        return "Loaded"
    if seen.loading:
        return "Loading"
    return "FailedToLoad" if seen.failures else "Standby"


def status(
    isvc: InferenceService,
    active: str,
    target: str,
    seen: dict[str, ModelObserved],
    endpoint_ready: bool,
    urls: dict[str, str],
    now: str,
) -> dict[str, Any]:
    """The isvc's status as modelmesh-serving writes it. PredictorReady means the endpoint takes requests (its
    runtime's deployment has a ready replica and the model is registered), not that the model is in memory."""
    a, t = seen.get(active, ModelObserved()), seen.get(target, ModelObserved())
    active_state = state(a)
    moving = active != target
    target_state = state(t) if moving else ""
    if (moving and target_state == "FailedToLoad") or (not moving and active_state == "FailedToLoad"):
        transition = "BlockedByFailedLoad"
    else:
        transition = "InProgress" if moving else "UpToDate"
    model_status: dict[str, Any] = {
        "transitionStatus": transition,
        "states": {"activeModelState": active_state, "targetModelState": target_state},
        "copies": {"totalCopies": a.copies, "failedCopies": len(a.failures)},
    }
    failure = _failure(target, t, now) or _failure(active, a, now)
    if failure is not None:
        model_status["lastFailureInfo"] = failure
    ready = endpoint_ready and a.pulled
    reason = "" if ready else ("ModelLoadFailed" if active_state == "FailedToLoad" else "PredictorNotReady")
    conditions = [_condition("PredictorReady", ready, reason, now), _condition("Ready", ready, reason, now)]
    before = {c.get("type"): c for c in (isvc.status or {}).get("conditions", [])}
    for c in conditions:
        old = before.get(c["type"])
        if old is not None and old.get("status") == c["status"] and old.get("lastTransitionTime"):
            c["lastTransitionTime"] = old["lastTransitionTime"]
    old_failure = ((isvc.status or {}).get("modelStatus") or {}).get("lastFailureInfo")
    if failure and old_failure and {**failure, "time": ""} == {**old_failure, "time": ""}:
        failure["time"] = old_failure["time"]
    predictor = {**urls, "activeModelId": active}
    if moving:
        predictor["targetModelId"] = target
    out: dict[str, Any] = {
        "observedGeneration": isvc.metadata.generation,
        "conditions": conditions,
        "deploymentMode": MODE,
        "components": {"predictor": predictor},
        "modelStatus": model_status,
    }
    if ready:
        out["url"] = urls.get("url", "")
        out["address"] = {"url": urls.get("restUrl", "")}
    return out


def refused_status(isvc: InferenceService, reason: str, message: str, now: str) -> dict[str, Any]:
    """The status of a ModelMesh isvc no runtime serves (or that asks for what is not supported)."""
    return {
        "observedGeneration": isvc.metadata.generation,
        "conditions": [_condition(kind, False, reason, now, message) for kind in ("PredictorReady", "Ready")],
        "deploymentMode": MODE,
        "modelStatus": {
            "transitionStatus": "InvalidSpec",
            "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
            "lastFailureInfo": {"reason": reason, "message": message, "time": now},
        },
    }


def _failure(model: str, seen: ModelObserved, now: str) -> dict[str, Any] | None:
    if seen.pull_error:
        return {"reason": "ModelLoadFailed", "modelId": model, "message": seen.pull_error, "time": now}
    if not seen.failures:
        return None
    replica, message = sorted(seen.failures.items())[-1]
    return {
        "location": replica[-LOCATION_CHARS:],
        "reason": "ModelLoadFailed",
        "modelId": model,
        "message": message,
        "time": now,
    }


def _condition(kind: str, ok: bool, reason: str, now: str, message: str = "") -> dict[str, Any]:
    out = {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": now}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out
