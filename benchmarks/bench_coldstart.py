"""Benchmark: scale-from-zero. The sklearn iris InferenceService with minReplicas 0 on the embedded platform: time
from the first request at zero to its 200 through the gateway, over N cold starts, with the platform's breakdown
(request held -> replica forked; forked -> model answers ready; the rest: release + the request itself); a burst
of 50 concurrent requests at zero (all must succeed); the memory of an idle platform with 10 InferenceServices at
zero. For scale, in the same run: start-to-first-prediction of a fresh server process — KServe 0.21's sklearn
server, MLServer 1.7.1, and `modelplane serve` without the zygote.

    python benchmarks/bench_coldstart.py [--starts 10] [--peer-starts 5] [--idle 10] [--ref GIT_REF]

`--ref` runs the platform from another commit's source (for before/after comparisons of a refactor).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_peers import HERE, IRIS_V1, RESULTS, iris_setup, mlserver_dir, venv

PORT, API_PORT, GRPC_PORT = 9990, 9991, 9992
API = f"http://127.0.0.1:{API_PORT}/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"
TOKEN = secrets.token_urlsafe(24)
FAST = {"stable-window": "6s", "scale-to-zero-grace-period": "1s", "tick-interval": "0.5s"}


def call(method: str, url: str, body: dict | None = None, timeout: float = 30) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def isvc(name: str, uri: Path) -> dict:
    model = {"modelFormat": {"name": "sklearn"}, "storageUri": str(uri)}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": {"minReplicas": 0, "model": model}},
    }


def scaling(name: str) -> dict:
    status = json.loads(call("GET", f"{API}/{name}")[1] or b"{}").get("status") or {}
    entries = (status.get("components") or {}).get("predictor", {}).get("autoscaling") or [{}]
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
    return {**entries[-1], "ready": ready}


def wait(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def phases() -> dict[str, float]:
    text = call("GET", f"http://127.0.0.1:{API_PORT}/metrics")[1].decode()
    found = re.findall(r'modelplane_cold_start_phase_seconds_sum\{phase="(\w+)"\} ([0-9.e+-]+)', text)
    return {k: float(v) for k, v in found}


def _processes(home: Path) -> list[dict]:
    """Replica processes still running or draining (Terminating), from the platform's state file."""
    try:
        doc = json.loads((home / "replicas.json").read_text())
    except (FileNotFoundError, ValueError):
        return []
    return doc.get("replicas", []) + doc.get("terminating", [])


def tree_pss_kib(pid: int) -> tuple[int, int]:
    """(PSS in KiB, process count) of a process and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    todo, total, count = [pid], 0, 0
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        total += int(re.search(r"^Pss:\s+(\d+)", text, re.M).group(1))
        count += 1
    return total, count


def process_start(cmd: list[str], url: str, body: dict, env: dict | None = None, cwd: Path | None = None) -> float:
    """Seconds from spawning a server process to its first 200 on `url`."""
    log = (RESULTS / "logs" / "coldstart-peer.log").open("ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=cwd)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[:3]} exited; see {log.name}")
            if call("POST", url, body, timeout=2)[0] == 200:
                return time.perf_counter() - t0
            time.sleep(0.005)
    finally:
        proc.terminate()
        proc.wait(30)


def peers(py: str, iris: Path, starts: int) -> dict[str, list[float]]:
    v1 = "http://127.0.0.1:{}/v1/models/sklearn-iris:predict"
    v2 = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": IRIS_V1["instances"]}]}
    kserve = [str(venv("kserve")), str(HERE / "peer_kserve.py"), "--model_name", "sklearn-iris"]
    kserve += ["--model_dir", str(iris), "--http_port", "9993", "--grpc_port", "9994"]
    mls_dir = mlserver_dir(iris, "coldstart", 9995, False)
    mlserver = [str(venv("mlserver").parent / "mlserver"), "start", str(mls_dir)]
    plain = [py, "-m", "modelplane", "serve", "--model-dir", str(iris), "--model-name", "sklearn-iris"]
    plain += ["--http-port", "9997", "--grpc-port", "9998", "--host", "127.0.0.1"]
    cases = {
        "kserve-0.21 process": (kserve, v1.format(9993), IRIS_V1),
        "mlserver-1.7.1 process": (mlserver, "http://127.0.0.1:9995/v2/models/sklearn-iris/infer", v2),
        "modelplane serve process": (plain, v1.format(9997), IRIS_V1),
    }
    out: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(starts):  # interleaved rounds
        for name, (cmd, url, body) in cases.items():
            out[name].append(process_start(cmd, url, body))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--starts", type=int, default=10)
    ap.add_argument("--peer-starts", type=int, default=5)
    ap.add_argument("--idle", type=int, default=10)
    ap.add_argument("--ref", default="", help="run the platform from this git ref's source")
    ap.add_argument("--out", default=str(RESULTS / "coldstart.json"))
    args = ap.parse_args()
    py, iris = iris_setup()
    home = Path(tempfile.mkdtemp(prefix="mp-bench-cold-"))
    (home / "config-autoscaler.yaml").write_text(json.dumps(FAST))
    env = {**os.environ, "MODELPLANE_HOME": str(home)}
    if args.ref:
        from bench_ab import source_tree

        py = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "python")  # PYTHONPATH picks the ref
        env["PYTHONPATH"] = str(source_tree(args.ref))
    (home / "token").write_text(TOKEN)  # the platform keeps a token it finds; the API needs it
    (home / "token").chmod(0o600)
    cmd = [py, "-m", "modelplane", "up", "--port", str(PORT), "--api-port", str(API_PORT), "--file-root", "/"]
    cmd += ["--grpc-port", str(GRPC_PORT)]
    platform = subprocess.Popen(
        cmd, env=env, stdout=(RESULTS / "coldstart-platform.log").open("wb"), stderr=subprocess.STDOUT
    )
    result: dict = {"config": FAST, "ref": args.ref or "this tree"}
    try:
        wait(lambda: call("GET", f"http://127.0.0.1:{API_PORT}/healthz")[0] == 200, "the platform")
        assert call("POST", API, isvc("sklearn-iris", iris))[0] in (200, 201)
        wait(lambda: scaling("sklearn-iris").get("ready"), "Ready")
        url = f"http://127.0.0.1:{PORT}/serving/default/sklearn-iris/v1/models/sklearn-iris:predict"
        runs = []
        for _ in range(args.starts):
            wait(lambda: scaling("sklearn-iris").get("actualReplicas") == 0, "scale to zero")
            before = phases()
            t0 = time.perf_counter()
            status, body = call("POST", url, IRIS_V1, timeout=60)
            total = time.perf_counter() - t0
            assert status == 200 and json.loads(body) == {"predictions": [1, 1]}, (status, body)
            wait(lambda b=before: phases().get("boot", 0) > b.get("boot", 0), "the breakdown", timeout=10)
            after = phases()
            split = {k: after[k] - before.get(k, 0.0) for k in after}
            split["release_and_request"] = total - sum(split.values())
            runs.append({"total": total, **split})
            print(
                f"cold start {len(runs)}: {total * 1000:.0f} ms  "
                + "  ".join(f"{k} {v * 1000:.0f}" for k, v in split.items())
            )
        result["cold_starts"] = runs
        result["cold_start_p50_s"] = statistics.median(r["total"] for r in runs)
        result["cold_start_max_s"] = max(r["total"] for r in runs)
        result["breakdown_p50_s"] = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "total"}

        wait(lambda: scaling("sklearn-iris").get("actualReplicas") == 0, "scale to zero")
        with ThreadPoolExecutor(50) as pool:
            codes = list(pool.map(lambda _: call("POST", url, IRIS_V1, timeout=120)[0], range(50)))
        result["burst_at_zero"] = {"requests": 50, "ok": codes.count(200), "failed": 50 - codes.count(200)}
        print("burst of 50 at zero:", result["burst_at_zero"])

        names = [f"iris-{i}" for i in range(args.idle)]
        for name in names:
            assert call("POST", API, isvc(name, iris))[0] in (200, 201)
        for name in names:
            wait(lambda name=name: scaling(name).get("ready"), f"{name} Ready")
        for name in [*names, "sklearn-iris"]:
            wait(lambda name=name: scaling(name).get("actualReplicas") == 0, f"{name} at zero")
        wait(lambda: not _processes(home), "the stopped replicas to exit")  # status says 0 once stops are signalled
        pss, procs = tree_pss_kib(platform.pid)
        result["idle"] = {
            "inference_services_at_zero": args.idle + 1,
            "pss_mib": round(pss / 1024, 1),
            "processes": procs,
        }
        print("idle platform:", result["idle"])
    finally:
        platform.terminate()
        platform.wait(60)
    if args.peer_starts:
        starts = peers(py, iris, args.peer_starts)
        result["process_start_to_first_prediction_s"] = {k: statistics.median(v) for k, v in starts.items()}
        result["process_start_runs"] = starts
        for k, v in starts.items():
            print(f"{k}: p50 {statistics.median(v) * 1000:.0f} ms  ({', '.join(f'{x * 1000:.0f}' for x in v)})")
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k not in ("cold_starts", "process_start_runs")}, indent=2))


if __name__ == "__main__":
    main()
