"""Test support: a real Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager 1.20.2, built
once per machine by scripts/kube-test-cluster.sh), the CRDs installed, and the modelplane operator as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from support.server import stop_process

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "kube-test-cluster.sh"
CRDS = ROOT / "tests" / "data" / "crds"
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 60.0, interval: float = 0.2) -> T:
    """Poll until `check` returns something truthy (not a timing assertion: a bound on a wait for behaviour)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # not there yet (404), or the server restarting
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}" + (f" (last error: {last})" if last else ""))


@dataclass
class Cluster:
    dir: Path
    kubeconfig: Path

    def client(self) -> Any:
        from kubernetes import client, config

        return client.ApiClient(config.new_client_from_config(str(self.kubeconfig)).configuration)

    def stop(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "down", str(self.dir)], check=False, capture_output=True, timeout=60)


def start_cluster(where: Path) -> Cluster:
    """Builds the binaries the first time on a machine (~7-9 min, cached under ~/.cache/modelplane), then starts
    the control plane on free ports (a few seconds)."""
    done = subprocess.run(["bash", str(SCRIPT), "up", str(where)], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        subprocess.run(["bash", str(SCRIPT), "down", str(where)], check=False, capture_output=True, timeout=60)
        raise RuntimeError(f"kube-test-cluster up failed:\n{done.stderr[-4000:]}")
    return Cluster(where, Path(done.stdout.strip().splitlines()[-1]))


def install(cluster: Cluster) -> None:
    """What `kubectl apply -k config/default` installs (generated from the code: CRDs, RBAC, the operator's
    namespace, ConfigMap and Deployment, the built-in ClusterServingRuntimes) and the minimal third-party CRDs
    (Knative, Istio, Gateway API, KEDA); waits until every CRD is served."""
    from kubernetes import client, utils

    from modelplane.backends.kubernetes.install import tree

    api = cluster.client()
    objects = [o for objs in tree().values() for o in objs]
    third_party = [yaml.safe_load(p.read_text()) for p in sorted(CRDS.glob("*.yaml"))]
    definitions = [o for o in objects if o["kind"] == "CustomResourceDefinition"] + third_party
    extensions = client.ApiextensionsV1Api(api)
    for doc in definitions:
        extensions.create_custom_resource_definition(doc)
    for doc in definitions:
        name = doc["metadata"]["name"]

        def established(name: str = name) -> bool:
            crd = extensions.read_custom_resource_definition(name)
            return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

        wait_for(established, f"CRD {name} established")
    rest = [o for o in objects if o["kind"] != "CustomResourceDefinition"]
    rest.sort(key=lambda o: o["kind"] != "Namespace")
    custom = client.CustomObjectsApi(api)
    for doc in rest:
        if doc["apiVersion"].startswith("serving.kserve.io/"):
            group, version = doc["apiVersion"].split("/")
            custom.create_cluster_custom_object(group, version, "clusterservingruntimes", doc)
        else:
            utils.create_from_dict(api, doc)


@dataclass
class OperatorProcess:
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.proc, grace_s=15)


def start_operator(cluster: Cluster, log_dir: Path, *args: str) -> OperatorProcess:
    log_path = log_dir / f"operator-{time.monotonic_ns()}.log"
    cmd = [sys.executable, "-m", "modelplane", "operator", "--kubeconfig", str(cluster.kubeconfig), *args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    operator = OperatorProcess(proc, log_path)
    try:
        wait_for(lambda: "workers" in operator.log() or proc.poll() is not None, "the operator to start")
        if proc.poll() is not None:
            raise RuntimeError(f"the operator exited:\n{operator.log()[-4000:]}")
    except BaseException:
        operator.stop()
        raise
    return operator
