"""Test support: a CRD's structural OpenAPI v3 schema as a JSON Schema the jsonschema package checks."""

from __future__ import annotations

from typing import Any


def jsonschema_of(node: Any) -> Any:
    """A structural OpenAPI v3 schema as JSON Schema: int-or-string and nullable spelled out; objects that do not
    preserve unknown fields refuse them (the API server would prune them: a rendered field that vanishes)."""
    if isinstance(node, list):
        return [jsonschema_of(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: jsonschema_of(v) for k, v in node.items() if not k.startswith("x-kubernetes") and k != "nullable"}
    if node.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("type") == "object" and "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out
