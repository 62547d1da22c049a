"""Minimal copies of third-party CRDs for the render schema tests and the live tests' 1.20 API server: one served
version; descriptions, CEL rules (x-kubernetes-validations) and empty-string defaults stripped (1.20 refuses the
last two); the api-approved annotation kept (a *.k8s.io group needs it). Usage:

    python scripts/minimize_crds.py KIND VERSION SOURCE.yaml "provenance text" > tests/data/crds/NAME.yaml
"""

from __future__ import annotations

import sys
from typing import Any

import yaml


def strip(node: Any) -> Any:
    if isinstance(node, dict) and node.get("x-kubernetes-list-map-keys"):
        items = node.get("items") or {}
        for key in node["x-kubernetes-list-map-keys"]:  # a map key needs a default or to be required
            if (items.get("properties") or {}).get(key, {}).get("default") == "":
                items["required"] = sorted({*items.get("required", []), key})
    if isinstance(node, dict):
        return {
            k: strip(v)
            for k, v in node.items()
            if k not in ("description", "x-kubernetes-validations", "example") and not (k == "default" and v == "")
        }
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def main() -> None:
    kind, version, source, provenance = sys.argv[1:5]
    with open(source) as f:
        docs = [d for d in yaml.safe_load_all(f) if d and d.get("kind") == "CustomResourceDefinition"]
    crd = next(d for d in docs if d["spec"]["names"]["kind"] == kind)
    crd["spec"]["versions"] = [{**strip(v), "storage": True} for v in crd["spec"]["versions"] if v["name"] == version]
    kept = {k: v for k, v in (crd["metadata"].get("annotations") or {}).items() if k == "api-approved.kubernetes.io"}
    crd["metadata"] = {"name": crd["metadata"]["name"], **({"annotations": kept} if kept else {})}
    sys.stdout.write(
        f"# Minimal copy of the {kind} CRD, {version} only, "
        "descriptions, CEL rules and empty-string defaults stripped.\n"
    )
    sys.stdout.write(f"# {provenance}. Apache License 2.0. Made by scripts/minimize_crds.py.\n")
    yaml.safe_dump(crd, sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
