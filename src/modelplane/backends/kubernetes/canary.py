"""Kubernetes backend: canaries and tag routing in Standard mode. While a component's `canaryTrafficPercent` splits
traffic between its latest revision and the rolled-out one, the rolled-out revision keeps running in
`<isvc>-<component>` as it is (left untouched), the latest runs in `<isvc>-<component>-canary` (fixed replicas, no
autoscaler, as KServe's 0.20 canaries), and the HTTPRoutes weigh the two Services; an Ingress cannot split, so it
stays on the stable one. Promotion renders the latest into `<isvc>-<component>` (a rolling update) and the canary
objects go. With `serving.kserve.io/enable-tag-routing`, the `latest-` and `prev-` hosts (Knative's tag names)
reach the latest and the rolled-out revision directly, over an Ingress as over HTTPRoutes."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from modelplane.backends.kubernetes.cache import kind_key
from modelplane.backends.kubernetes.config import Ingress
from modelplane.backends.kubernetes.render.meta import app_label, component_name, host
from modelplane.control.api import InferenceService
from modelplane.control.reconciler import COMPONENTS, TAG_ROUTING

CANARY_SUFFIX = "-canary"


@dataclass(frozen=True)
class Split:
    stable: str  # the rolled-out revision's name
    latest: str
    stable_weight: int
    canary_weight: int  # 0 until the canary is ready, and when rolled back


def split(isvc: InferenceService, component: str, latest: str, targets: list[dict[str, Any]]) -> Split | None:
    """The component's split, when it is in a canary (a percent is set and the latest is not the rolled-out
    revision); `targets` is the reconciler's traffic for the component."""
    percent = getattr(isvc.spec, component).canary_traffic_percent
    previous = ((isvc.status or {}).get("components") or {}).get(component) or {}
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
    objects: list[dict[str, Any]], isvc: InferenceService, component: str, s: Split
) -> tuple[list[dict[str, Any]], set[tuple[str, str]]]:
    """The rendered objects rewritten for the split: the component's Deployment and Service renamed to the canary
    ones, its autoscaler dropped, the routes weighted. Returns them and the stable objects to keep as they are."""
    stable = component_name(isvc, component)
    canary = stable + CANARY_SUFFIX
    replicas = max(1, getattr(isvc.spec, component).min_replicas or 1)
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


def tag_routes(
    objects: list[dict[str, Any]], isvc: InferenceService, component: str, s: Split | None, ingress: Ingress
) -> list[dict[str, Any]]:
    """The component's tag hosts added to its routes: `latest-<isvc>-<component>` to the Service running the latest
    revision (the canary's during a split), and during a split `prev-<isvc>-<component>` to the stable one. An
    Ingress gains a rule per tag host; with Gateway API each tag gets an HTTPRoute of its own."""
    name = component_name(isvc, component)
    tags = {"latest": name + CANARY_SUFFIX if s is not None else name}
    if s is not None:
        tags["prev"] = name
    out = []
    for obj in objects:
        if obj["kind"] == "Ingress":
            obj = copy.deepcopy(obj)
            template = next(r for r in obj["spec"]["rules"] if r["host"] == host(ingress, isvc, name))
            for tag, service in tags.items():
                rule = copy.deepcopy(template)
                rule["host"] = host(ingress, isvc, f"{tag}-{name}")
                rule["http"]["paths"][0]["backend"]["service"]["name"] = service
                obj["spec"]["rules"].append(rule)
        elif obj["kind"] == "HTTPRoute" and obj["metadata"]["name"] == name:
            for tag, service in tags.items():
                route = copy.deepcopy(obj)
                route["metadata"]["name"] = f"{tag}-{name}"
                route["spec"]["hostnames"] = [host(ingress, isvc, f"{tag}-{name}")]
                for rule in route["spec"]["rules"]:
                    ref = {k: v for k, v in rule["backendRefs"][0].items() if k != "weight"}
                    rule["backendRefs"] = [{**ref, "name": service}]
                out.append(route)
        out.append(obj)
    return out


def new_tag_routes(objects: list[dict[str, Any]], isvc: InferenceService, ingress: Ingress) -> list[dict[str, Any]]:
    """A new InferenceService's tag hosts (`latest-` for each component; no canary yet), for `modelplane render`."""
    if isvc.metadata.annotations.get(TAG_ROUTING) != "true":
        return objects
    for component in COMPONENTS:
        if getattr(isvc.spec, component) is not None:
            objects = tag_routes(objects, isvc, component, None, ingress)
    return objects
