"""Benchmark: the embedded gateway's cost — iris V1 REST with wrk straight to the replica vs through the gateway
(path routing), same run, interleaved rounds, medians; and apply-to-Ready time of KServe's sklearn-iris sample.

    python benchmarks/bench_gateway.py [--duration 10] [--repeats 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_peers import IRIS_V1, RESULTS, iris_setup, lua_post, run_wrk

ISVC = {
    "apiVersion": "serving.kserve.io/v1beta1",
    "kind": "InferenceService",
    "metadata": {"name": "sklearn-iris"},
    "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": ""}}},
}
API = "http://127.0.0.1:9891/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"
TOKEN = secrets.token_urlsafe(24)


def request(method: str, url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def ready() -> bool:
    status = request("GET", f"{API}/sklearn-iris").get("status") or {}
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--applies", type=int, default=5)
    ap.add_argument("--kills", type=int, default=4)
    ap.add_argument("--out", default=str(RESULTS / "gateway.json"))
    args = ap.parse_args()
    py, iris = iris_setup()
    home = Path(tempfile.mkdtemp(prefix="mp-bench-gw-"))
    env = {**os.environ, "MODELPLANE_HOME": str(home)}
    (home / "token").write_text(TOKEN)  # the platform keeps a token it finds; the API needs it
    (home / "token").chmod(0o600)
    platform = subprocess.Popen(
        [py, "-m", "modelplane", "up", "--port", "9890", "--api-port", "9891", "--file-root", "/"],
        env=env,
        stdout=(RESULTS / "gateway-platform.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    apply_s: list[float] = []
    recover_s: list[float] = []
    rows: dict[str, list[dict]] = {"direct": [], "gateway": []}
    try:
        for _ in range(300):
            try:
                request("GET", API)
                break
            except OSError:
                time.sleep(0.1)
        isvc = json.loads(json.dumps(ISVC))
        for i in range(args.applies):  # each apply a new revision: apply -> Ready through the whole platform
            isvc["spec"]["predictor"]["model"]["storageUri"] = str(iris) + ("/" * i if i else "")
            isvc["spec"]["predictor"]["model"]["args"] = [f"--max-threads={4 + i}"]
            start = time.perf_counter()
            request("POST", f"{API}?apply=true", isvc)
            revision = f"sklearn-iris-predictor-{i + 1:05d}"
            while True:
                status = request("GET", f"{API}/sklearn-iris").get("status") or {}
                if (status.get("components") or {}).get("predictor", {}).get("latestReadyRevision") == revision:
                    break
                time.sleep(0.02)
            apply_s.append(time.perf_counter() - start)
        saved = json.loads((home / "replicas.json").read_text())["replicas"]
        replica = next(r for r in saved if r["revision"].split(".")[1].endswith(f"{args.applies:05d}"))
        urls = {
            "direct": f"http://127.0.0.1:{replica['http_port']}/v1/models/sklearn-iris:predict",
            "gateway": "http://127.0.0.1:9890/serving/default/sklearn-iris/v1/models/sklearn-iris:predict",
        }
        script = lua_post(RESULTS / "gateway.lua", json.dumps(IRIS_V1).encode())
        for url in urls.values():
            run_wrk(url, script, args.connections, 3)
        for _ in range(args.repeats):
            for name, url in urls.items():
                rows[name].append(run_wrk(url, script, args.connections, args.duration))
                time.sleep(1)
        for _ in range(args.kills):  # kill -9 a replica: time until its replacement answers ready
            time.sleep(11)  # independent crashes: past the supervisor's crash-loop window (replicas.HEALTHY_S)
            saved = json.loads((home / "replicas.json").read_text())["replicas"]
            victim = next(r for r in saved if r["revision"] == replica["revision"])
            start = time.perf_counter()
            os.kill(victim["pid"], signal.SIGKILL)
            while True:
                now = json.loads((home / "replicas.json").read_text())["replicas"]
                fresh = next(
                    (r for r in now if r["revision"] == victim["revision"] and r["pid"] != victim["pid"]), None
                )
                if fresh is not None:
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{fresh['http_port']}/v2/health/ready", timeout=1)
                        break
                    except OSError:
                        pass
                time.sleep(0.01)
            recover_s.append(time.perf_counter() - start)
    finally:
        platform.send_signal(signal.SIGTERM)
        platform.wait(60)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("rps", "p50_ms", "p99_ms")} for k, v in rows.items()}
    result = {"median": med, "raw": rows, "apply_to_ready_s": apply_s, "kill_to_ready_s": recover_s, "args": vars(args)}
    Path(args.out).write_text(json.dumps(result, indent=1))
    d, g = med["direct"], med["gateway"]
    print(
        f"c={args.connections}: direct {d['rps']:.0f} req/s (p50 {d['p50_ms']:.2f} ms, p99 {d['p99_ms']:.2f} ms); "
        f"gateway {g['rps']:.0f} req/s (p50 {g['p50_ms']:.2f} ms, p99 {g['p99_ms']:.2f} ms)"
    )
    print(f"gateway/direct throughput {g['rps'] / d['rps']:.2f}x; p50 overhead {g['p50_ms'] - d['p50_ms']:.2f} ms")
    print(f"apply -> Ready: {', '.join(f'{s:.2f}' for s in apply_s)} s (median {statistics.median(apply_s):.2f} s)")
    print(
        f"kill -9 -> replacement ready: {', '.join(f'{s:.2f}' for s in recover_s)} s "
        f"(median {statistics.median(recover_s):.2f} s, max {max(recover_s):.2f} s)"
    )


if __name__ == "__main__":
    main()
