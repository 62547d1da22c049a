"""Benchmark: --workers 2 vs --workers 1 on a CPU-bound model, and memory per extra worker with and without
--fork-after-load (copy-on-write sharing of the loaded model).

Throughput: the iris SVC over V1 REST with wrk (its cost is Python and scikit-learn holding the GIL, so one process
tops out at one core), medians of interleaved rounds. Memory: a numpy MLP with ~200 MB of weights; the sum of
proportional set sizes (PSS, /proc/<pid>/smaps_rollup: shared pages split between the processes sharing them)
over the supervisor and its workers.

    python benchmarks/bench_workers.py [--duration 10] [--repeats 3] [--connections 64]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

from bench_peers import IRIS_V1, RESULTS, Server, iris_setup, lua_post, run_wrk, sh

ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
BIG_MLP = {"inputs": 64, "hidden": 4096, "layers": 4}


def pss_mib(pid: int) -> float:
    """PSS of `pid` and its children, in MiB."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    total = 0
    for p in [pid, *map(int, children)]:
        text = Path(f"/proc/{p}/smaps_rollup").read_text()
        total += next(int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:"))
    return total / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--out", default=str(RESULTS / "workers.json"))
    args = ap.parse_args()
    py, iris = iris_setup()
    mlp = RESULTS / "mlp-big"
    sh([py, "-c", f"from modelplane.samples.mlp import make_mlp; make_mlp({str(mlp)!r}, **{BIG_MLP!r})"])
    serve = [py, "-m", "modelplane", "serve", "--host", "127.0.0.1"]

    # --- throughput -------------------------------------------------------------------------------------------
    servers = {
        n: Server(
            f"workers-{n}",
            [
                *serve,
                "--model-dir",
                str(iris),
                "--model-name",
                "iris",
                "--workers",
                str(n),
                "--http-port",
                str(9400 + 10 * n),
                "--grpc-port",
                str(9401 + 10 * n),
            ],
            f"http://127.0.0.1:{9400 + 10 * n}/v2/health/ready",
            ENV,
        )
        for n in (1, 2)
    }
    script = lua_post(RESULTS / "workers.lua", json.dumps(IRIS_V1).encode())
    rows: dict[int, list[dict]] = {1: [], 2: []}
    try:
        for s in servers.values():
            s.start()
        for s in servers.values():
            s.wait()
        for n in servers:
            run_wrk(f"http://127.0.0.1:{9400 + 10 * n}/v1/models/iris:predict", script, 16, 3)
        for _ in range(args.repeats):
            for n in servers:
                url = f"http://127.0.0.1:{9400 + 10 * n}/v1/models/iris:predict"
                rows[n].append(run_wrk(url, script, args.connections, args.duration))
                time.sleep(1)
    finally:
        for s in servers.values():
            s.stop()
    rps = {n: statistics.median(r["rps"] for r in v) for n, v in rows.items()}

    # --- memory -----------------------------------------------------------------------------------------------
    memory: dict[str, float] = {}
    for mode in ("--load-per-worker", "--fork-after-load"):
        for n in (1, 2):
            s = Server(
                f"mem-{mode[2:]}-{n}",
                [
                    *serve,
                    "--model-class",
                    "modelplane.samples.mlp:MLP",
                    "--model-dir",
                    str(mlp),
                    "--model-name",
                    "m",
                    "--workers",
                    str(n),
                    mode,
                    "--http-port",
                    "9450",
                    "--grpc-port",
                    "9451",
                ],
                "http://127.0.0.1:9450/v2/health/ready",
                ENV,
            )
            s.start()
            try:
                s.wait()
                time.sleep(2)  # every worker ready, not just the first to answer
                memory[f"{mode[2:]} x{n}"] = pss_mib(s.proc.pid)
            finally:
                s.stop()
                time.sleep(1)
    weights_mib = sum(p.stat().st_size for p in mlp.iterdir()) / 2**20
    result = {"rps": rps, "raw": rows, "pss_mib": memory, "weights_mib": weights_mib, "args": vars(args)}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result["pss_mib"], indent=1))
    print(
        f"\niris V1, c={args.connections}: 1 worker {rps[1]:.0f} req/s, 2 workers {rps[2]:.0f} req/s "
        f"({rps[2] / rps[1]:.2f}x)"
    )
    print(f"\nmodel weights {weights_mib:.0f} MiB; PSS total (supervisor + workers):")
    for mode in ("load-per-worker", "fork-after-load"):
        one, two = memory[f"{mode} x1"], memory[f"{mode} x2"]
        print(f"  {mode}: 1 worker {one:.0f} MiB, 2 workers {two:.0f} MiB -> extra worker costs {two - one:.0f} MiB")


if __name__ == "__main__":
    main()
