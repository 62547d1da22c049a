"""Kubernetes backend: a canary in Standard mode. While `canaryTrafficPercent` splits traffic between the latest
revision and the rolled-out one, the rolled-out revision keeps running in `<isvc>-predictor` as it is (left
untouched), the latest runs in `<isvc>-predictor-canary` (fixed replicas, no autoscaler, as KServe's 0.20
canaries), and the HTTPRoutes weigh the two Services; an Ingress cannot split, so it stays on the stable one.
Promotion renders the latest into `<isvc>-predictor` (a rolling update) and the canary objects go."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from modelplane.backends.kubernetes.cache import kind_key
from modelplane.backends.kubernetes.render.meta import app_label, component_name
from modelplane.control.api import InferenceService

CANARY_SUFFIX = "-canary"


@dataclass(frozen=True)
class Split:
    stable: str  # the rolled-out revision's name
    latest: str
    stable_weight: int
    canary_weight: int  # 0 until the canary is ready, and when rolled back


def split(isvc: InferenceService, latest: str, targets: list[dict[str, Any]]) -> Split | None:
    """The predictor's split, when it is in a canary (a percent is set and the latest is not the rolled-out
    revision); `targets` is the reconciler's traffic for the predictor."""
    percent = isvc.spec.predictor.canary_traffic_percent
    previous = ((isvc.status or {}).get("components") or {}).get("predictor") or {}
    stable = previous.get("latestRolledoutRevision")
    if percent is None or percent >= 100 or not stable or stable == latest:
        return None
    by_name: dict[str, int] = {}
    for t in targets:  # the reconciler names the latest *ready* revision: the stable one until the canary is ready
        name = t.get("revisionName", "")
        by_name[name] = by_name.get(name, 0) + int(t.get("percent", 0))
    canary = by_name.get(latest, 0)
    return Split(stable, latest, 100 - canary, canary)


def apply_split(
    objects: list[dict[str, Any]], isvc: InferenceService, s: Split
) -> tuple[list[dict[str, Any]], set[tuple[str, str]]]:
    """The rendered objects rewritten for the split: the predictor's Deployment and Service renamed to the canary
    ones, its autoscaler dropped, the routes weighted. Returns them and the stable objects to keep as they are."""
    stable = component_name(isvc, "predictor")
    canary = stable + CANARY_SUFFIX
    replicas = max(1, isvc.spec.predictor.min_replicas or 1)
    out: list[dict[str, Any]] = []
    keep: set[tuple[str, str]] = set()
    for obj in objects:
        name, kind = obj["metadata"]["name"], obj["kind"]
        if name == stable and kind in ("Deployment", "Service"):
            keep.add((kind_key(obj["apiVersion"], kind), stable))
            obj = copy.deepcopy(obj)
            obj["metadata"]["name"] = canary
            if kind == "Deployment":
                obj["spec"]["replicas"] = replicas
                obj["spec"]["selector"]["matchLabels"]["app"] = app_label(canary)
                obj["spec"]["template"]["metadata"]["labels"]["app"] = app_label(canary)
            else:
                obj["spec"]["selector"]["app"] = app_label(canary)
        elif name == stable and kind in ("HorizontalPodAutoscaler", "ScaledObject"):
            keep.add((kind_key(obj["apiVersion"], kind), stable))  # the stable one keeps scaling
            continue
        elif kind == "HTTPRoute":
            obj = copy.deepcopy(obj)
            for rule in obj["spec"]["rules"]:
                refs = rule["backendRefs"]
                if len(refs) == 1 and refs[0]["name"] == stable:
                    rule["backendRefs"] = [
                        {**refs[0], "weight": s.stable_weight},
                        {**refs[0], "name": canary, "weight": s.canary_weight},
                    ]
        out.append(obj)
    return out, keep
