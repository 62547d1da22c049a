"""Benchmark: the Kubernetes operator on a real kube-apiserver + controller-manager (scripts/kube-test-cluster.sh):
N InferenceServices (Standard mode) created at once by concurrent clients — time until every one has all its
objects (its Ingress, the last one written, seen by a watch), p50/p99 create→objects latency — and, as the floor
under the same load, create→the InferenceService's own watch event — the operator's RSS,
API writes per InferenceService, then the operator restarted over all of them: writes when nothing changed.

First, on the idle cluster, `--idle` InferenceServices are created one at a time: create→objects with no load.

    python benchmarks/bench_operator.py [--count 500] [--clients 8] [--workers 32] [--idle 10] [--out FILE]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_ab import cpu_seconds  # noqa: E402
from support.kube import install, start_cluster, start_operator, wait_for  # noqa: E402
from support.server import free_port  # noqa: E402

NS = "bench"
WRITES = re.compile(r"reconciled bench/(\S+): (\d+) writes")
TIMES = re.compile(r"reconciled bench/iris\S+: \d+ writes \(queued (\d+) ms, took (\d+) ms\)")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def writes_by_isvc(log: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, n in WRITES.findall(log):
        out[name] = out.get(name, 0) + int(n)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--idle", type=int, default=10)
    ap.add_argument("--out", default=str(HERE / "results" / "operator.json"))
    args = ap.parse_args()

    from kubernetes import client, watch

    work = Path(tempfile.mkdtemp(prefix="mp-bench-operator-"))
    cluster = start_cluster(work / "cluster")
    operator = None
    try:
        install(cluster)
        api = cluster.client()
        client.CoreV1Api(api).create_namespace({"metadata": {"name": NS}})
        webhook = ("--webhook-port", str(free_port()))
        operator = start_operator(cluster, work, *webhook, "--workers", str(args.workers))
        seen: dict[str, float] = {}
        done = threading.Event()

        def watch_ingresses() -> None:  # the Ingress is the last object an InferenceService renders to
            w = watch.Watch()
            net = client.NetworkingV1Api(cluster.client())
            for event in w.stream(net.list_namespaced_ingress, NS, timeout_seconds=600):
                seen.setdefault(event["object"].metadata.name, time.monotonic())
                if len(seen) >= args.count + args.idle or done.is_set():
                    w.stop()

        announced: dict[str, float] = {}  # the floor: when a watcher learns of the InferenceService itself

        def watch_isvcs() -> None:
            w = watch.Watch()
            api = client.CustomObjectsApi(cluster.client())
            args_ = ("serving.kserve.io", "v1beta1", NS, "inferenceservices")
            for event in w.stream(api.list_namespaced_custom_object, *args_, timeout_seconds=600):
                announced.setdefault(event["object"]["metadata"]["name"], time.monotonic())
                if len(announced) >= args.count + args.idle or done.is_set():
                    w.stop()

        for target in (watch_ingresses, watch_isvcs):
            threading.Thread(target=target, daemon=True).start()
        time.sleep(1.0)  # the watch is established
        custom = client.CustomObjectsApi(cluster.client())
        created: dict[str, float] = {}
        cpu_before = cpu_seconds(operator.proc.pid)

        def create(i: int, prefix: str = "iris") -> None:
            name = f"{prefix}-{i:04d}"
            body = {
                "apiVersion": "serving.kserve.io/v1beta1",
                "kind": "InferenceService",
                "metadata": {"name": name, "annotations": {"serving.kserve.io/deploymentMode": "Standard"}},
                "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://m/iris"}}},
            }
            wait_for(
                lambda: custom.create_namespaced_custom_object(
                    "serving.kserve.io", "v1beta1", NS, "inferenceservices", body
                ),
                f"create {name}",
            )
            created[name] = time.monotonic()

        for i in range(args.idle):
            create(i, "idle")
            wait_for(lambda i=i: f"idle-{i:04d}" in seen, "an idle InferenceService's objects", interval=0.005)
        idle = sorted(seen[n] - created.pop(n) for n in list(created))
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(create, range(args.count)))
        created_all = time.monotonic() - start
        wait_for(
            lambda: sum(n in seen for n in created) >= args.count,
            "every InferenceService's objects",
            timeout=600,
            interval=0.5,
        )
        all_rendered = max(seen[n] for n in created) - start
        latencies = sorted(seen[n] - created[n] for n in created)
        wait_for(lambda: all(n in announced for n in created), "every InferenceService's own watch event")
        floor = sorted(announced[n] - created[n] for n in created)
        time.sleep(5)  # statuses settle (the Deployment controller writes each Deployment's status)
        rss = rss_mib(operator.proc.pid)
        cpu_per_isvc_ms = (cpu_seconds(operator.proc.pid) - cpu_before) / (args.count + args.idle) * 1000
        first = writes_by_isvc(operator.log())
        times = [(int(q), int(t)) for q, t in TIMES.findall(operator.log())]
        operator.stop()
        restarted = start_operator(cluster, work, *webhook, "--workers", str(args.workers))
        operator = restarted
        wait_for(
            lambda: len(writes_by_isvc(restarted.log())) >= args.count + args.idle,
            "the restarted operator's pass",
            timeout=600,
        )
        again = writes_by_isvc(restarted.log())
        result = {
            "count": args.count,
            "clients": args.clients,
            "workers": args.workers,
            "idle_p50_s": round(idle[len(idle) // 2], 3) if idle else None,
            "created_all_s": round(created_all, 2),
            "all_rendered_s": round(all_rendered, 2),
            "p50_s": round(latencies[len(latencies) // 2], 3),
            "p99_s": round(latencies[int(len(latencies) * 0.99) - 1], 3),
            "watch_floor_p50_s": round(floor[len(floor) // 2], 3),
            "watch_floor_p99_s": round(floor[int(len(floor) * 0.99) - 1], 3),
            "max_s": round(latencies[-1], 3),
            "reconciles": len(times),
            "queued_ms_p50": statistics.median(q for q, _ in times),
            "reconcile_ms_p50": statistics.median(t for _, t in times),
            "reconcile_ms_p99": sorted(t for _, t in times)[int(len(times) * 0.99) - 1],
            "operator_rss_mib": round(rss, 1),
            "operator_cpu_ms_per_isvc": round(cpu_per_isvc_ms, 1),
            "writes_per_isvc_median": statistics.median(first.values()),
            "writes_per_isvc_max": max(first.values()),
            "writes_after_restart_total": sum(again.values()),
        }
        print(json.dumps(result, indent=2))
        Path(args.out).write_text(json.dumps(result, indent=2))
        done.set()
    finally:
        if operator is not None:
            operator.stop()
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
