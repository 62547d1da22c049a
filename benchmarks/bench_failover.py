"""Benchmark: kill -9 of the only replica under load. The sklearn iris InferenceService (one replica) on the
embedded platform, 4 REST + 4 gRPC clients (c=8) sending predictions back to back through the gateway; after
`--before` seconds the replica is killed with SIGKILL; the clients go on for `--after` seconds. Reported per
protocol: requests, failed requests, the failed share, and the longest request (the hold while the replacement
starts). Run against another git ref in the same run for the before/after comparison:

    python benchmarks/bench_failover.py [--ref HEAD~1] [--rounds 3] [--before 3] [--after 6]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import threading
import time
from pathlib import Path

from bench_ab import source_tree, start_platform
from bench_peers import IRIS_V1, RESULTS, ROOT, iris_setup


def replicas(home: Path) -> list[dict]:
    """The running replicas in the state file (older versions do not record readiness there)."""
    try:
        return json.loads((home / "replicas.json").read_text())["replicas"]
    except (FileNotFoundError, ValueError, KeyError):
        return []


class Load:
    """REST and gRPC clients in threads; per protocol a list of (ok, seconds) per request."""

    def __init__(self, gw: int, grpc_port: int, clients: int) -> None:
        self.stop = threading.Event()
        self.results: dict[str, list[tuple[bool, float]]] = {"rest": [], "grpc": []}
        self.url = f"http://127.0.0.1:{gw}/serving/default/sklearn-iris/v1/models/sklearn-iris:predict"
        self.target = f"127.0.0.1:{grpc_port}"
        self.threads = [threading.Thread(target=self._rest) for _ in range(clients)]
        self.threads += [threading.Thread(target=self._grpc) for _ in range(clients)]

    def _rest(self) -> None:
        import httpx

        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                start = time.perf_counter()
                try:
                    ok = client.post(self.url, json=IRIS_V1).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.results["rest"].append((ok, time.perf_counter() - start))

    def _grpc(self) -> None:
        import grpc

        from modelplane.grpcproto import inference_pb2 as pb
        from modelplane.grpcproto import inference_pb2_grpc as pb_grpc

        req = pb.ModelInferRequest(model_name="sklearn-iris")
        inp = req.inputs.add(name="input-0", datatype="FP32", shape=[2, 4])
        inp.contents.fp32_contents.extend([v for row in IRIS_V1["instances"] for v in row])
        route = [("x-modelplane-route", "/serving/default/sklearn-iris")]
        with grpc.insecure_channel(self.target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            while not self.stop.is_set():
                start = time.perf_counter()
                try:
                    stub.ModelInfer(req, metadata=route, timeout=60)
                    ok = True
                except grpc.RpcError:
                    ok = False
                self.results["grpc"].append((ok, time.perf_counter() - start))

    def run(self, before: float, after: float, kill: callable) -> None:
        for t in self.threads:
            t.start()
        time.sleep(before)
        kill()
        time.sleep(after)
        self.stop.set()
        for t in self.threads:
            t.join()


def one_round(home: Path, gw: int, grpc_port: int, args: argparse.Namespace) -> dict[str, dict]:
    [replica] = replicas(home)

    def kill() -> None:
        os.kill(replica["pid"], signal.SIGKILL)

    load = Load(gw, grpc_port, args.clients)
    load.run(args.before, args.after, kill)
    deadline = time.time() + 60  # the next round starts on a ready replacement
    while not any(r["pid"] != replica["pid"] for r in replicas(home)) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(11)  # past the crash-loop window, so the next kill restarts at once as the first did
    out = {}
    for proto, rows in load.results.items():
        failed = sum(1 for ok, _ in rows if not ok)
        out[proto] = {
            "requests": len(rows),
            "failed": failed,
            "failed_pct": 100.0 * failed / max(len(rows), 1),
            "max_s": max((s for _, s in rows), default=0.0),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="", help="also run this git ref, in the same run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before", type=float, default=3.0)
    ap.add_argument("--after", type=float, default=6.0)
    ap.add_argument("--clients", type=int, default=4, help="per protocol")
    ap.add_argument("--out", default=str(RESULTS / "failover.json"))
    args = ap.parse_args()
    _, iris = iris_setup()
    py = str(ROOT / ".venv" / "bin" / "python")
    sides: dict[str, Path | None] = {"this": None}
    if args.ref:
        sides[args.ref] = source_tree(args.ref)
    rows: dict[str, list[dict]] = {side: [] for side in sides}
    for side, src in sides.items():
        name = f"failover-{side.replace('/', '_')}"
        server, home, gw, grpc_port = start_platform(name, py, iris, src, {"minReplicas": 1, "maxReplicas": 1})
        try:
            for _ in range(args.rounds):
                rows[side].append(one_round(home, gw, grpc_port, args))
                print(side, json.dumps(rows[side][-1]))
        finally:
            server.proc.send_signal(signal.SIGTERM)
            server.proc.wait(60)
    summary = {
        side: {
            proto: {
                "requests": sum(r[proto]["requests"] for r in runs),
                "failed": sum(r[proto]["failed"] for r in runs),
                "median_failed_pct": statistics.median(r[proto]["failed_pct"] for r in runs),
                "max_s": max(r[proto]["max_s"] for r in runs),
            }
            for proto in ("rest", "grpc")
        }
        for side, runs in rows.items()
    }
    print(json.dumps(summary, indent=2))
    Path(args.out).write_text(json.dumps({"args": vars(args), "summary": summary, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
