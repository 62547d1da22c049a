"""Benchmark: 10x overload for 30 s against a model with --max-concurrency/--max-queue — memory stays bounded,
rejections are fast (p99 of a 429), the server does not crash, and throughput recovers when the load stops.

The model is the numpy MLP (~1.9 ms a request, one at a time: --max-concurrency 1 --max-queue 8).
Capacity is measured first with wrk; then h2load (HTTP/1.1, many connections, a fixed request rate per
connection) offers 10x that for 30 s while the server's RSS is sampled; then capacity is measured again.

    python benchmarks/bench_overload.py [--seconds 30] [--factor 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import threading
import time
from pathlib import Path

from bench_batching import BODY, wrk_script
from bench_batching import run as run_wrk
from bench_peers import RESULTS, Server, ensure_tools, sh, venv

MODEL = {"inputs": 20, "hidden": 2048, "layers": 4}  # ~1.9 ms a row; BLAS releases the GIL
ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
URL = "http://127.0.0.1:9600/v2/models/mlp/infer"


def rss_mib(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in text.splitlines() if line.startswith("VmRSS:")) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--factor", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--server-args", default="", help="extra `modelplane serve` flags")
    ap.add_argument("--out", default=str(RESULTS / "overload.json"))
    args = ap.parse_args()
    (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
    ensure_tools()
    py = str(venv("modelplane"))
    mlp = RESULTS / "mlp-overload"
    sh([py, "-c", f"from modelplane.samples.mlp import make_mlp; make_mlp({str(mlp)!r}, **{MODEL!r})"])
    server = Server(
        "overload",
        [
            py,
            "-m",
            "modelplane",
            "serve",
            "--host",
            "127.0.0.1",
            "--model-class",
            "modelplane.samples.mlp:MLP",
            "--model-dir",
            str(mlp),
            "--model-name",
            "mlp",
            "--http-port",
            "9600",
            "--grpc-port",
            "9601",
            "--max-concurrency",
            "1",
            "--max-queue",
            "8",
            *args.server_args.split(),
        ],
        "http://127.0.0.1:9600/v2/health/ready",
        ENV,
    )
    script = wrk_script(RESULTS / "overload.lua")
    body = RESULTS / "overload-body.json"
    body.write_text(json.dumps(BODY))
    server.start()
    try:
        server.wait()
        run_wrk(URL, script, 4, 3)
        before = run_wrk(URL, script, 4, 10)
        assert not before["errors"], "the capacity run had errors: check the request body against the model"
        rss_idle = rss_mib(server.proc.pid)
        rate = args.factor * before["rps"]
        per_conn = max(1, round(rate / args.connections))
        samples: list[float] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(rss_mib(server.proc.pid))
                time.sleep(0.5)

        sampler = threading.Thread(target=sample)
        sampler.start()
        log = RESULTS / "overload-h2load.log"
        log.unlink(missing_ok=True)
        out = subprocess.run(
            [
                "h2load",
                "--h1",
                f"-c{args.connections}",
                f"--rps={per_conn}",
                "-D",
                str(args.seconds),
                "-d",
                str(body),
                "-H",
                "content-type: application/json",
                f"--log-file={log}",
                URL,
            ],
            capture_output=True,
            text=True,
        ).stdout
        stop.set()
        sampler.join()
        alive = server.proc.poll() is None
        time.sleep(2)
        after = run_wrk(URL, script, 4, 10)
    finally:
        server.stop()
    by_status: dict[int, list[int]] = {}
    for line in log.read_text().splitlines():
        _, status, micros = line.split("\t")[:3]
        by_status.setdefault(int(status), []).append(int(micros))

    def pct(values: list[int], q: float) -> float:
        values = sorted(values)
        return values[min(len(values) - 1, int(q * len(values)))] / 1000 if values else float("nan")

    offered = sum(len(v) for v in by_status.values()) / args.seconds
    result = {
        "capacity_before_rps": before["rps"],
        "capacity_after_rps": after["rps"],
        "offered_rps": offered,
        "target_offered_rps": rate,
        "statuses": {s: len(v) for s, v in by_status.items()},
        "p50_ms": {s: pct(v, 0.5) for s, v in by_status.items()},
        "p99_ms": {s: pct(v, 0.99) for s, v in by_status.items()},
        "rss_idle_mib": rss_idle,
        "rss_max_mib": max(samples),
        "rss_median_mib": statistics.median(samples),
        "alive": alive,
        "h2load": out[-600:],
    }
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "h2load"}, indent=1))


if __name__ == "__main__":
    main()
