"""Benchmark: adaptive batching on a batch-friendly model, modelplane on vs off, MLServer 1.7.1 as the peer.

The model is a scikit-learn random forest (100 trees, 20 features; predicting 32 rows costs about what 1 row does),
served by modelplane's sklearn runtime and by MLServer's own mlserver-sklearn runtime with its adaptive batching
(max_batch_size / max_batch_time set to the same values as ours).
All servers run at once on loopback (one worker each, BLAS single-threaded everywhere: OMP_NUM_THREADS=1) and are
loaded one at a time with wrk (V2 REST JSON, one row per request) over a sweep of connection counts, interleaved
over `--repeats` rounds; medians reported. "Throughput at equal p95" is each server's best throughput among the
sweep points whose p95 stays within `--p95-budget-ms`.

    python benchmarks/bench_batching.py [--duration 10] [--repeats 3] [--concurrency 1 4 16 32 64]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

from bench_peers import RESULTS, Server, ensure_tools, sh, venv

BODY = {"inputs": [{"name": "input-0", "shape": [1, 20], "datatype": "FP32", "data": [[0.5] * 20]}]}
ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def wrk_script(path: Path) -> Path:
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        "function done(summary, latency, requests)\n"
        '  io.write(string.format("P95 %d\\nP50 %d\\nP99 %d\\nOK %d\\n", latency:percentile(95), '
        "latency:percentile(50), latency:percentile(99), summary.requests - summary.errors.status))\n"
        "end\n"
    )
    return path


def run(url: str, script: Path, conns: int, duration: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields = dict(line.split(" ", 1) for line in out.splitlines() if line[:3] in ("P95", "P50", "P99", "OK "))
    rps = float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")))
    errors = "Non-2xx" in out
    return {
        "rps": rps,
        "p50_ms": int(fields["P50"]) / 1000,
        "p95_ms": int(fields["P95"]) / 1000,
        "p99_ms": int(fields["P99"]) / 1000,
        "errors": errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 32, 64])
    ap.add_argument("--p95-budget-ms", type=float, default=50.0)
    ap.add_argument("--max-batch-size", type=int, default=32)
    ap.add_argument("--max-latency-ms", type=float, default=5.0)
    ap.add_argument("--out", default=str(RESULTS / "batching.json"))
    args = ap.parse_args()
    (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
    ensure_tools()
    mp_py, mls_py = venv("modelplane"), venv("mlserver")
    model_dir = RESULTS / "forest"
    sh([str(mp_py), "-c", f"from modelplane.samples.forest import train_forest; train_forest({str(model_dir)!r})"])
    mls_dir = RESULTS / "mlserver-forest"
    (mls_dir / "forest").mkdir(parents=True, exist_ok=True)
    (mls_dir / "settings.json").write_text(
        json.dumps({"http_port": 9220, "grpc_port": 9221, "metrics_port": 9222, "debug": False, "parallel_workers": 0})
    )
    (mls_dir / "forest" / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "forest",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": str(model_dir / "model.joblib")},
                "max_batch_size": args.max_batch_size,
                "max_batch_time": args.max_latency_ms / 1000,
            }
        )
    )
    mp = [str(mp_py), "-m", "modelplane", "serve", "--host", "127.0.0.1", "--model-dir", str(model_dir)]
    mp += ["--model-name", "forest"]
    batch = [
        "--enable-batcher",
        "--max-batch-size",
        str(args.max_batch_size),
        "--max-latency",
        str(args.max_latency_ms),
    ]
    servers = {
        "modelplane, batching off": Server(
            "mp-off", [*mp, "--http-port", "9200", "--grpc-port", "9201"], "http://127.0.0.1:9200/v2/health/ready", ENV
        ),
        "modelplane, batching on": Server(
            "mp-batch",
            [*mp, *batch, "--http-port", "9210", "--grpc-port", "9211"],
            "http://127.0.0.1:9210/v2/health/ready",
            ENV,
        ),
        "MLServer 1.7.1, adaptive batching": Server(
            "mls-batch",
            [str(mls_py.parent / "mlserver"), "start", str(mls_dir)],
            "http://127.0.0.1:9220/v2/health/ready",
            ENV,
        ),
    }
    urls = {
        "modelplane, batching off": "http://127.0.0.1:9200/v2/models/forest/infer",
        "modelplane, batching on": "http://127.0.0.1:9210/v2/models/forest/infer",
        "MLServer 1.7.1, adaptive batching": "http://127.0.0.1:9220/v2/models/forest/infer",
    }
    script = wrk_script(RESULTS / "batching.lua")
    rows: dict[str, dict[int, list[dict]]] = {name: {c: [] for c in args.concurrency} for name in servers}
    try:
        for s in servers.values():
            s.start()
        for s in servers.values():
            s.wait()
        for name in servers:  # warm up
            run(urls[name], script, 16, 3)
        for r in range(args.repeats):
            for c in args.concurrency:
                for name in servers:
                    rows[name][c].append(run(urls[name], script, c, args.duration))
                    time.sleep(1)
            print(f"round {r + 1}/{args.repeats} done", flush=True)
    finally:
        for s in servers.values():
            s.stop()
    med = {
        name: {
            c: {k: statistics.median(x[k] for x in v) for k in ("rps", "p50_ms", "p95_ms", "p99_ms")}
            for c, v in by_c.items()
        }
        for name, by_c in rows.items()
    }
    Path(args.out).write_text(
        json.dumps(
            {"model": "RandomForestClassifier(100 trees)", "args": vars(args), "median": med, "raw": rows}, indent=1
        )
    )
    print("\n| server | " + " | ".join(f"c={c} req/s (p95 ms)" for c in args.concurrency) + " |")
    print("|---|" + "---|" * len(args.concurrency))
    for name, by_c in med.items():
        cells = [f"{by_c[c]['rps']:.0f} ({by_c[c]['p95_ms']:.1f})" for c in args.concurrency]
        print(f"| {name} | " + " | ".join(cells) + " |")
    best = {}
    for name, by_c in med.items():
        within = [m["rps"] for m in by_c.values() if m["p95_ms"] <= args.p95_budget_ms]
        best[name] = max(within) if within else 0.0
    print(f"\nbest throughput with p95 <= {args.p95_budget_ms:.0f} ms:")
    base = best["modelplane, batching off"] or 1.0
    for name, rps in best.items():
        print(f"  {name}: {rps:.0f} req/s ({rps / base:.2f}x batching off)")


if __name__ == "__main__":
    main()
