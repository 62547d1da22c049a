"""Benchmark: ModelMesh mode on the local platform against Standard mode, same run — N InferenceServices each way:
apply-to-Loaded (the first ModelMesh one starts the runtime's shared deployment, the next ones are models in it;
each Standard one starts a replica) and the replicas' memory (PSS); then a model version switch under steady
load: the vmodel's switch (pull + load beside the old model, then the alias moves) against the same change to a
Standard-mode InferenceService (a new revision: a new replica process, then traffic moves). Reported: time from the
apply until the first answer from the new model, and requests that failed meanwhile.

    python benchmarks/bench_vmodel.py [--applies 24] [--switches 5] [--clients 4]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench_peers import RESULTS, venv

API = "http://127.0.0.1:9893/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"
GATEWAY = "http://127.0.0.1:9892"
TOKEN = secrets.token_urlsafe(24)
ZERO = {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [0.0, 0.0, 0.0]}]}
MAKE_MODELS = """
import sys, joblib, numpy as np
from pathlib import Path
from sklearn.linear_model import LinearRegression
root = Path(sys.argv[1])
for i in range(int(sys.argv[2])):
    x = np.random.default_rng(i).random((20, 3))
    (root / f"m{i}").mkdir(parents=True, exist_ok=True)
    joblib.dump(LinearRegression().fit(x, x @ np.array([1.0, 2.0, 3.0]) + i), root / f"m{i}" / "model.joblib")
"""


def call(method: str, url: str, body: dict | None = None, timeout: float = 10) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except OSError:  # not listening yet, reset
        return 0, {}


def isvc(name: str, uri: Path, mesh: bool) -> dict:
    meta: dict = {"name": name}
    if mesh:
        meta["annotations"] = {"serving.kserve.io/deploymentMode": "ModelMesh"}
    else:
        meta["annotations"] = {"serving.kserve.io/deploymentMode": "Standard"}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": meta,
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": str(uri)}}},
    }


def apply(doc: dict) -> None:
    name = doc["metadata"]["name"]
    status, current = call("GET", f"{API}/{name}")
    if status == 200:
        doc = {**doc, "metadata": {**doc["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
        call("PUT", f"{API}/{name}", doc)
    else:
        call("POST", API, doc)


def answer(name: str) -> float | None:
    code, body = call("POST", f"{GATEWAY}/serving/default/{name}/v2/models/{name}/infer", ZERO, timeout=30)
    return body["outputs"][0]["data"][0] if code == 200 else None


def wait(check, timeout: float = 120) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if check():
            return time.perf_counter() - start
        time.sleep(0.02)
    raise TimeoutError("timed out")


def loaded(name: str) -> bool:
    status = call("GET", f"{API}/{name}")[1].get("status") or {}
    if status.get("deploymentMode") == "ModelMesh":
        return (status.get("modelStatus") or {}).get("states", {}).get("activeModelState") == "Loaded"
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))


class Load:
    """`clients` threads asking `name` in a loop; counts answers by value and failures."""

    def __init__(self, name: str, clients: int) -> None:
        self.name = name
        self.stop = threading.Event()
        self.failed = 0
        self.answers: dict[int, int] = {}
        self.first: dict[int, float] = {}  # value -> when it was first seen
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            value = answer(self.name)
            with self.lock:
                if value is None:
                    self.failed += 1
                else:
                    key = round(value)
                    self.answers[key] = self.answers.get(key, 0) + 1
                    self.first.setdefault(key, time.perf_counter())

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()


def switches(name: str, mesh: bool, models: Path, first: int, count: int, clients: int) -> dict:
    """`count` switches of `name` to models first, first + 1, ... under `clients` steady clients."""
    wait(lambda: loaded(name) and answer(name) is not None, 180)
    load = Load(name, clients)
    took = []
    try:
        time.sleep(1)
        for i in range(1, count + 1):
            start = time.perf_counter()
            apply(isvc(name, models / f"m{first + i}", mesh))
            wait(lambda i=i: first + i in load.first, 180)
            took.append(load.first[first + i] - start)
            time.sleep(1)
    finally:
        load.close()
    return {"switch_s": took, "median_s": statistics.median(took), "failed": load.failed, "answers": load.answers}


def replicas_pss(home: Path) -> int:
    """Proportional set size of the platform's replica processes (pages shared with the zygote counted once)."""
    saved = json.loads((home / "replicas.json").read_text()) if (home / "replicas.json").exists() else {}
    total = 0
    for replica in saved.get("replicas", []):
        try:
            rollup = Path(f"/proc/{replica['pid']}/smaps_rollup").read_text()
        except OSError:
            continue
        total += next(int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:"))
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--switches", type=int, default=5)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--applies", type=int, default=24)
    ap.add_argument("--out", default=str(RESULTS / "vmodel.json"))
    args = ap.parse_args()
    py = str(venv("modelplane"))
    home = Path(tempfile.mkdtemp(prefix="mp-bench-vmodel-"))
    models = home / "models"
    subprocess.run([py, "-c", MAKE_MODELS, str(models), str(args.applies + args.switches + 1)], check=True)
    (home / "token").write_text(TOKEN)
    (home / "token").chmod(0o600)
    env = {**os.environ, "MODELPLANE_HOME": str(home)}
    argv = [py, "-m", "modelplane", "up", "--port", "9892", "--api-port", "9893", "--file-root", "/"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    platform = subprocess.Popen(argv, env=env, stdout=(RESULTS / "vmodel-platform.log").open("wb"), stderr=-2)
    result: dict = {"applies": args.applies, "switches": args.switches, "clients": args.clients}
    try:
        wait(lambda: call("GET", API)[0] == 200, 60)
        for mesh, prefix in ((True, "mm"), (False, "std")):  # N InferenceServices each way: time and memory
            took = []
            before = replicas_pss(home)
            for i in range(args.applies):
                start = time.perf_counter()
                apply(isvc(f"{prefix}-{i}", models / f"m{i}", mesh))
                wait(lambda name=f"{prefix}-{i}": loaded(name), 180)
                took.append(time.perf_counter() - start)
            time.sleep(2)
            result[prefix] = {
                "first_apply_to_loaded_s": took[0],
                "next_apply_to_loaded_s": statistics.median(took[1:]),
                "replicas_pss_mib": (replicas_pss(home) - before) / 2**20,
            }
        result["mm"]["switch"] = switches("mm-0", True, models, args.applies, args.switches, args.clients)
        result["std"]["switch"] = switches("std-0", False, models, args.applies, args.switches, args.clients)
    finally:
        platform.terminate()
        platform.wait(30)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
