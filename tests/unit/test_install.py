"""config/ (what `kubectl apply -k config/default` installs) is generated from the code and up to date, and every
object in it is valid for Kubernetes (strict schemas) or for our own CRDs."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
from support.schemas import jsonschema_of

from modelplane.backends.kubernetes.crds import crds
from modelplane.backends.kubernetes.install import tree

ROOT = Path(__file__).resolve().parents[2]


def test_config_is_generated_from_the_code() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_config.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr + "run: python scripts/gen_config.py"


def test_every_installed_object_is_valid() -> None:
    schemas = {
        c["spec"]["names"]["kind"]: jsonschema_of(c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]) for c in crds()
    }
    kinds = []
    for objects in tree().values():
        for obj in objects:
            kinds.append(obj["kind"])
            if obj["apiVersion"].startswith("serving.kserve.io/"):
                jsonschema.validate(obj, schemas[obj["kind"]])
            else:
                kubernetes_validate.validate(copy.deepcopy(obj), "1.30.0", strict=True)
    assert {"CustomResourceDefinition", "ClusterRole", "Deployment", "ConfigMap", "ClusterServingRuntime"} <= set(kinds)
