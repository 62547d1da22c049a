"""Kubernetes backend: the CustomResourceDefinitions, generated from the typed specs in `control.api` as structural
OpenAPI v3 schemas, with KServe's group, names, short names, scopes and printer columns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from modelplane.control.api import SERVING_GROUP, InferenceGraph, InferenceService, ServingRuntime, TrainedModel


@dataclass(frozen=True, slots=True)
class Kind:
    model: type[BaseModel]
    kind: str
    plural: str
    version: str
    scope: str = "Namespaced"
    short: tuple[str, ...] = ()
    columns: tuple[tuple[str, str, str], ...] = ()  # (name, type, jsonPath)


_READY = ("Ready", "string", ".status.conditions[?(@.type=='Ready')].status")
_AGE = ("Age", "date", ".metadata.creationTimestamp")
_TRAFFIC = ".status.components.predictor.traffic"
_RUNTIME_COLUMNS = (
    ("Disabled", "boolean", ".spec.disabled"),
    ("ModelType", "string", ".spec.supportedModelFormats[*].name"),
    ("Containers", "string", ".spec.containers[*].name"),
    _AGE,
)
KINDS = (
    Kind(
        InferenceService,
        "InferenceService",
        "inferenceservices",
        "v1beta1",
        short=("isvc",),
        columns=(
            ("URL", "string", ".status.url"),
            _READY,
            ("Prev", "integer", f"{_TRAFFIC}[?(@.tag=='prev')].percent"),
            ("Latest", "integer", f"{_TRAFFIC}[?(@.latestRevision==true)].percent"),
            ("PrevRolledoutRevision", "string", f"{_TRAFFIC}[?(@.tag=='prev')].revisionName"),
            ("LatestReadyRevision", "string", f"{_TRAFFIC}[?(@.latestRevision==true)].revisionName"),
            _AGE,
        ),
    ),
    Kind(ServingRuntime, "ServingRuntime", "servingruntimes", "v1alpha1", columns=_RUNTIME_COLUMNS),
    Kind(
        ServingRuntime, "ClusterServingRuntime", "clusterservingruntimes", "v1alpha1", "Cluster", (), _RUNTIME_COLUMNS
    ),
    Kind(
        TrainedModel,
        "TrainedModel",
        "trainedmodels",
        "v1alpha1",
        short=("tm",),
        columns=(("URL", "string", ".status.url"), _READY, _AGE),
    ),
    Kind(
        InferenceGraph,
        "InferenceGraph",
        "inferencegraphs",
        "v1alpha1",
        short=("ig",),
        columns=(("URL", "string", ".status.url"), _READY, _AGE),
    ),
)


def crd(kind: Kind) -> dict[str, Any]:
    raw = kind.model.model_json_schema(by_alias=True)
    defs = raw.get("$defs", {})
    spec = structural(raw["properties"]["spec"], defs)
    root = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
        "required": ["spec"],
    }
    names: dict[str, Any] = {
        "kind": kind.kind,
        "listKind": f"{kind.kind}List",
        "plural": kind.plural,
        "singular": kind.kind.lower(),
    }
    if kind.short:
        names["shortNames"] = list(kind.short)
    version = {
        "name": kind.version,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": root},
        "subresources": {"status": {}},
        "additionalPrinterColumns": [{"name": n, "type": t, "jsonPath": p} for n, t, p in kind.columns],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{SERVING_GROUP}"},
        "spec": {"group": SERVING_GROUP, "names": names, "scope": kind.scope, "versions": [version]},
    }


def crds() -> list[dict[str, Any]]:
    return [crd(k) for k in KINDS]


def structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema node as a structural schema: $refs inlined, `X | None` as X (nullable), objects that
    keep unknown fields marked so, anything untyped preserved; no defaults (the webhook defaults)."""
    if "$ref" in node:
        return structural(defs[node["$ref"].rsplit("/", 1)[1]], defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        nullable = len(options) < len(node["anyOf"])
        if len(options) == 1:
            out = structural(options[0], defs)
        elif {o.get("type") for o in options} == {"integer", "string"}:
            out = {"x-kubernetes-int-or-string": True}
        else:
            out = {"x-kubernetes-preserve-unknown-fields": True}
        if nullable:
            out["nullable"] = True
        _describe(out, node)
        return out
    kind = node.get("type")
    out: dict[str, Any]
    if kind == "object":
        out = {"type": "object"}
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if props:
            out["properties"] = {k: structural(v, defs) for k, v in props.items()}
            required = [r for r in node.get("required", []) if r in props]
            if required:
                out["required"] = required
            if extra is True or extra is None:
                out["x-kubernetes-preserve-unknown-fields"] = True
        elif isinstance(extra, dict) and extra:
            out["additionalProperties"] = structural(extra, defs)
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        items = node.get("items")
        out = {"type": "array", "items": structural(items, defs) if items else _any()}
    elif kind in ("string", "integer", "boolean", "number"):
        out = {"type": kind}
    else:
        out = _any()
    _describe(out, node)
    return out


def _any() -> dict[str, Any]:
    return {"x-kubernetes-preserve-unknown-fields": True}


def _describe(out: dict[str, Any], node: dict[str, Any]) -> None:
    if node.get("description"):
        out["description"] = node["description"]
