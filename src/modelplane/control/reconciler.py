"""Control plane: the pure reconciler — (isvc, revisions, observed replicas, last status) → desired replicas per
revision, traffic per component, and the status KServe would write. No I/O, no clock: a backend supplies both."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from modelplane.control.api import ComponentExtension, Container, CustomComponentSpec, InferenceService, ServingRuntime
from modelplane.control.autoscaling.config import ANNOTATION as AUTOSCALING
from modelplane.control.revision import Revision
from modelplane.control.runtimes import RuntimeResolutionError, select_runtime, server_container
from modelplane.control.webhook import AUTOSCALER_ANNOTATION, MODE_ALIASES, MODE_ANNOTATION

COMPONENTS = ("predictor", "transformer", "explainer")
STOP_ANNOTATION = "serving.kserve.io/stop"
TAG_ROUTING = "serving.kserve.io/enable-tag-routing"


@dataclass(frozen=True, slots=True)
class Observed:
    """What a backend sees of one revision."""

    ready: int = 0  # replicas whose model is loaded
    failure: str = ""  # last crash / load failure, if any
    starting: int = 0  # replicas that run but are not ready (starting, or restarting after a crash)
    standby: bool = False  # scaled to zero by the autoscaler: still serving, through the activator


@dataclass
class Desired:
    replicas: dict[str, int] = field(default_factory=dict)  # revision name -> replica count
    traffic: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # component -> KServe traffic targets
    status: dict[str, Any] = field(default_factory=dict)


def serving_revisions(isvc: InferenceService, component: str) -> set[str]:
    """The revisions of a component that the isvc's last status sends traffic to."""
    previous = ((isvc.status or {}).get("components") or {}).get(component) or {}
    return {t["revisionName"] for t in previous.get("traffic") or [] if t.get("percent", 0) > 0}


def template_hash(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]


def _container_template(c: Container) -> dict[str, Any]:
    probe = ((c.model_extra or {}).get("readinessProbe") or {}).get("httpGet") or {}
    return {
        **({"image": c.image} if c.image else {}),  # a new image is a new revision (on a cluster it is what runs)
        **({"readinessPath": str(probe["path"])} if probe.get("path") else {}),  # a runtime's own readiness URL
        "command": c.command,
        "args": c.args or [],
        "env": {e.name: e.value or "" for e in c.env or []},
        "resources": c.resources or {},
    }


def is_raw(isvc: InferenceService) -> bool:
    mode = isvc.metadata.annotations.get(MODE_ANNOTATION) or "Knative"
    return MODE_ALIASES.get(mode, mode) == "Standard"


def scaling(isvc: InferenceService, component: ComponentExtension) -> dict[str, Any]:
    """The fields of a component that decide how its revisions scale (they are part of the revision template)."""
    annotations = {**isvc.metadata.annotations, **(component.annotations or {})}
    return {
        "minReplicas": component.min_replicas,
        "maxReplicas": component.max_replicas or 0,
        "containerConcurrency": component.container_concurrency,
        "scaleTarget": component.scale_target,
        "scaleMetric": component.scale_metric,
        "timeout": component.timeout,
        "autoscaling": {
            k: v for k, v in annotations.items() if k.startswith(AUTOSCALING) or k == AUTOSCALER_ANNOTATION
        },
        "raw": is_raw(isvc),
    }


def templates(
    isvc: InferenceService, namespaced: list[ServingRuntime], cluster: list[ServingRuntime]
) -> dict[str, dict[str, Any]]:
    """The revision template of each component: everything that, when changed, makes a new revision.
    Raises RuntimeResolutionError when no runtime serves the predictor."""
    out: dict[str, dict[str, Any]] = {}
    predictor = isvc.spec.predictor
    predictor_scaling = scaling(isvc, predictor)
    if predictor.model is not None:
        selected = select_runtime(predictor.model, isvc.metadata.namespace, namespaced, cluster)
        out["predictor"] = {
            **_container_template(server_container(isvc, selected)),
            "storageUri": predictor.model.storage_uri,
            "protocol": selected.protocol,
            "runtime": selected.runtime.metadata.name,
            "clusterRuntime": selected.cluster,
            "modelFormat": predictor.model.model_format.name,
            **predictor_scaling,
            "logger": predictor.logger.dump() if predictor.logger else None,
            "batcher": predictor.batcher.dump() if predictor.batcher else None,
        }
    else:
        assert predictor.containers
        out["predictor"] = {**_container_template(_main(predictor.containers)), "storageUri": None, **predictor_scaling}
    for name in ("transformer", "explainer"):
        component: CustomComponentSpec | None = getattr(isvc.spec, name)
        if component is not None and component.containers:
            out[name] = {
                **_container_template(_main(component.containers)),
                **scaling(isvc, component),
            }
    return out


def _main(containers: list[Container]) -> Container:
    return next((c for c in containers if c.name == "kserve-container"), containers[0])


def _traffic(percent: int | None, latest_ready: str | None, rolled_out: str | None, tags: bool) -> list[dict[str, Any]]:
    """Knative's traffic block as KServe computes it (controlplane-notes §3.1)."""
    if latest_ready is None:
        return []
    latest: dict[str, Any] = {"revisionName": latest_ready, "latestRevision": True}
    if tags:
        latest["tag"] = "latest"
    if percent is not None and rolled_out:
        latest["percent"] = percent
        targets = [latest]
        if percent < 100:
            targets.append(
                {"revisionName": rolled_out, "latestRevision": False, "percent": 100 - percent, "tag": "prev"}
            )
        return targets
    latest["percent"] = 100
    return [latest]


def _condition(kind: str, ok: bool | None, reason: str = "", message: str = "", now: str = "") -> dict[str, Any]:
    out = {"type": kind, "status": "Unknown" if ok is None else ("True" if ok else "False"), "lastTransitionTime": now}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def reconcile(
    isvc: InferenceService,
    revisions: dict[str, list[Revision]],
    observed: dict[str, Observed],
    *,
    now: str,
    gateway_url: str = "",
    domain: str = "example.com",
    resolution_error: RuntimeResolutionError | None = None,
) -> Desired:
    meta = isvc.metadata
    last = isvc.status or {}
    desired = Desired()
    components_status: dict[str, Any] = {}
    ready_by_component: dict[str, bool] = {}
    stopped = meta.annotations.get(STOP_ANNOTATION) == "true"
    tags = meta.annotations.get(TAG_ROUTING) == "true"
    failures: list[tuple[str, str]] = []
    for name in COMPONENTS:
        revs = revisions.get(name) or []
        spec = getattr(isvc.spec, name)
        if spec is None or not revs:
            continue
        previous = (last.get("components") or {}).get(name, {})
        latest_created = revs[-1].name
        minimum = max(1, spec.min_replicas if spec.min_replicas is not None else 1)
        serving_now = serving_revisions(isvc, name)

        def is_ready(revision: str, serving_now: set[str] = serving_now, minimum: int = minimum) -> bool:
            """Whether traffic may go to the revision. It becomes so with minReplicas ready replicas (as Knative's
            min-scale); one that already serves keeps its traffic while any replica is ready, at zero (standby) or
            being replaced after a crash — the gateway holds its requests meanwhile, as Knative's activator does
            (its Ready condition is still False until a replica answers)."""
            seen = observed.get(revision, Observed())
            if revision in serving_now:
                return seen.ready >= 1 or seen.standby or seen.starting >= 1
            return seen.ready >= minimum

        ready_revs = [r.name for r in revs if is_ready(r.name)]
        latest_ready = ready_revs[-1] if ready_revs else None
        rolled_out = previous.get("latestRolledoutRevision")
        prev_rolled_out = previous.get("previousRolledoutRevision")
        traffic = _traffic(spec.canary_traffic_percent, latest_ready, rolled_out, tags)
        # rollout bookkeeping, as KServe's status propagation does it
        latest_target = next((t for t in traffic if t.get("latestRevision")), None)
        if latest_target and latest_target["revisionName"] == latest_ready:
            share = sum(t["percent"] for t in traffic if t["revisionName"] == latest_ready)
            if latest_target["percent"] == 100 and rolled_out != latest_ready:
                prev_rolled_out, rolled_out = rolled_out, latest_ready
            elif (
                rolled_out == latest_ready == latest_created
                and latest_target["percent"] < 100
                and share == 100
                and prev_rolled_out
            ):
                rolled_out = prev_rolled_out
                traffic = _traffic(spec.canary_traffic_percent, latest_ready, rolled_out, tags)
        if stopped:
            traffic = []
        # Traffic only ever moves to ready revisions: while a target (a rollback to a scaled-down revision, say)
        # has no ready replica, the previous split keeps serving and the target is started.
        wanted_traffic = traffic
        waiting = [t for t in traffic if t.get("percent", 0) > 0 and not is_ready(t["revisionName"])]
        old_traffic = previous.get("traffic") or []
        if waiting and old_traffic and all(is_ready(t["revisionName"]) for t in old_traffic if t.get("percent", 0) > 0):
            traffic = old_traffic
        desired.traffic[name] = traffic
        for rev in revs:
            serving = any(
                t["revisionName"] == rev.name and t.get("percent", 0) > 0 for t in (*traffic, *wanted_traffic)
            )
            wanted = not stopped and (serving or rev.name == latest_created)
            desired.replicas[rev.name] = minimum if wanted else 0
        failure = observed.get(latest_created, Observed()).failure
        if failure and latest_created != latest_ready:
            failures.append((latest_created, failure))
        ready_by_component[name] = bool(traffic) and all(
            (seen := observed.get(t["revisionName"], Observed())).ready > 0 or seen.standby
            for t in traffic
            if t.get("percent", 0) > 0
        )
        entry: dict[str, Any] = {
            "latestCreatedRevision": latest_created,
            "traffic": [dict(t) for t in traffic],
        }
        if latest_ready:
            entry["latestReadyRevision"] = latest_ready
        if rolled_out:
            entry["latestRolledoutRevision"] = rolled_out
        if prev_rolled_out:
            entry["previousRolledoutRevision"] = prev_rolled_out
        if gateway_url:
            entry["url"] = f"{gateway_url}/serving/{meta.namespace}/{meta.name}"
        components_status[name] = entry
    status = _status(
        isvc, components_status, ready_by_component, failures, stopped, now, gateway_url, domain, resolution_error
    )
    predictor_revs = revisions.get("predictor") or []
    template = predictor_revs[-1].template if predictor_revs else {}
    if template.get("runtime"):  # the runtime the selection picked, recorded as KServe does
        status["clusterServingRuntimeName" if template.get("clusterRuntime") else "servingRuntimeName"] = template[
            "runtime"
        ]
    desired.status = status
    return desired


def _status(
    isvc: InferenceService,
    components: dict[str, Any],
    ready: dict[str, bool],
    failures: list[tuple[str, str]],
    stopped: bool,
    now: str,
    gateway_url: str,
    domain: str,
    resolution_error: RuntimeResolutionError | None,
) -> dict[str, Any]:
    meta = isvc.metadata
    mode = meta.annotations.get(MODE_ANNOTATION) or "Knative"
    predictor_ready = ready.get("predictor", False)
    others = [c for c in ("transformer", "explainer") if getattr(isvc.spec, c) is not None]
    conditions = []
    if stopped:
        conditions.append(_condition("PredictorReady", False, "Stopped", now=now))
        conditions.append(_condition("IngressReady", False, "Stopped", now=now))
        conditions.append(_condition("Stopped", True, now=now))
    elif resolution_error is not None:
        conditions.append(_condition("PredictorReady", False, resolution_error.reason, resolution_error.message, now))
        conditions.append(_condition("IngressReady", False, "Predictor ingress not created", now=now))
    else:
        reason = "" if predictor_ready else ("RevisionFailed" if failures else "RevisionNotReady")
        conditions.append(
            _condition("PredictorReady", predictor_ready, reason, failures[0][1] if failures else "", now)
        )
        missing = [c for c in others if not ready.get(c)]
        ingress = predictor_ready and not missing
        why = (
            ""
            if ingress
            else (f"{missing[0].capitalize()} ingress not created" if missing else "Predictor ingress not created")
        )
        conditions.append(_condition("IngressReady", ingress, why, now=now))
        for c in others:
            conditions.append(_condition(f"{c.capitalize()}Ready", ready.get(c, False), now=now))
    all_ready = all(c["status"] == "True" for c in conditions if c["type"] in ("PredictorReady", "IngressReady"))
    conditions.append(_condition("Ready", all_ready, "" if all_ready else "NotReady", now=now))
    before = {c.get("type"): c for c in (isvc.status or {}).get("conditions", [])}
    for c in conditions:  # a condition's time is when its status last changed, not when it was last computed
        old = before.get(c["type"])
        if old is not None and old.get("status") == c["status"] and old.get("lastTransitionTime"):
            c["lastTransitionTime"] = old["lastTransitionTime"]
    status: dict[str, Any] = {
        "observedGeneration": meta.generation,
        "conditions": conditions,
        "deploymentMode": {"Serverless": "Knative", "RawDeployment": "Standard"}.get(mode, mode),
        "components": components,
        "modelStatus": _model_status(all_ready, failures, resolution_error, stopped, now),
    }
    info, old_info = (
        status["modelStatus"].get("lastFailureInfo"),
        (isvc.status or {}).get("modelStatus", {}).get("lastFailureInfo"),
    )
    if info and old_info and {**info, "time": ""} == {**old_info, "time": ""}:
        info["time"] = old_info["time"]
    if all_ready:
        host = (
            f"{meta.name}.{meta.namespace}.{domain}"
            if status["deploymentMode"] == "Knative"
            else (f"{meta.name}-{meta.namespace}.{domain}")
        )
        status["url"] = f"http://{host}"
        if gateway_url:
            status["address"] = {"url": f"{gateway_url}/serving/{meta.namespace}/{meta.name}"}
    return status


def _model_status(
    ready: bool, failures: list[tuple[str, str]], error: RuntimeResolutionError | None, stopped: bool, now: str
) -> dict[str, Any]:
    if error is not None:
        return {
            "transitionStatus": "InvalidSpec",
            "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
            "lastFailureInfo": {"reason": error.reason, "message": error.message, "time": now},
        }
    if failures:  # the newest revision failed; an older one may still be serving
        revision, message = failures[0]
        return {
            "transitionStatus": "BlockedByFailedLoad",
            "states": {"activeModelState": "Loaded" if ready else "", "targetModelState": "FailedToLoad"},
            "lastFailureInfo": {
                "reason": "ModelLoadFailed",
                "message": message,
                "modelRevisionName": revision,
                "location": revision,
                "time": now,
            },
        }
    if ready:
        return {"transitionStatus": "UpToDate", "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"}}
    state = "" if stopped else "Pending"
    return {"transitionStatus": "InProgress", "states": {"activeModelState": state, "targetModelState": "Loaded"}}
