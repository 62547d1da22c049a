"""Benchmark: the payload logger's throughput cost — iris V1 REST with the logger off vs on (mode all, two events a
request) posting to a minimal keep-alive sink on the same machine (benchmarks/sink_server.py). Interleaved rounds,
medians; also reports events delivered vs dropped.

    python benchmarks/bench_logger.py [--duration 10] [--repeats 5] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench_peers import HERE, IRIS_V1, RESULTS, Server, iris_setup, lua_post, run_wrk


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--out", default=str(RESULTS / "logger.json"))
    args = ap.parse_args()
    py, iris = iris_setup()
    sink = subprocess.Popen([py, str(HERE / "sink_server.py"), "9599"])
    serve = [py, "-m", "modelplane", "serve", "--host", "127.0.0.1", "--model-dir", str(iris), "--model-name", "iris"]
    servers = {
        "off": Server("logger-off", [*serve, "--http-port", "9500", "--grpc-port", "9501"], None, port=9500),
        "on": Server(
            "logger-on",
            [*serve, "--http-port", "9510", "--grpc-port", "9511", "--log-url", "http://127.0.0.1:9599/events"],
            None,
            port=9510,
        ),
    }
    port = {"off": 9500, "on": 9510}
    script = lua_post(RESULTS / "logger.lua", json.dumps(IRIS_V1).encode())
    rows: dict[str, list[dict]] = {"off": [], "on": []}
    try:
        for s in servers.values():
            s.start()
        for s in servers.values():
            s.wait()
        time.sleep(2)
        for name in servers:
            run_wrk(f"http://127.0.0.1:{port[name]}/v1/models/iris:predict", script, args.connections, 3)
        for _ in range(args.repeats):
            for name in servers:
                url = f"http://127.0.0.1:{port[name]}/v1/models/iris:predict"
                rows[name].append(run_wrk(url, script, args.connections, args.duration))
                time.sleep(1)
        time.sleep(2)
        sent = metric(9510, "modelplane_payload_log_sent_total")
        dropped = metric(9510, "modelplane_payload_log_dropped_total")
    finally:
        for s in servers.values():
            s.stop()
        sink.terminate()
    rps = {k: statistics.median(r["rps"] for r in v) for k, v in rows.items()}
    p99 = {k: statistics.median(r["p99_ms"] for r in v) for k, v in rows.items()}
    result = {"rps": rps, "p99_ms": p99, "sent": sent, "dropped": dropped, "raw": rows, "args": vars(args)}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(
        f"iris V1 c={args.connections}: logger off {rps['off']:.0f} req/s (p99 {p99['off']:.2f} ms), "
        f"on {rps['on']:.0f} req/s (p99 {p99['on']:.2f} ms): cost {100 * (1 - rps['on'] / rps['off']):.1f}%"
    )
    print(f"events delivered {sent:.0f}, dropped {dropped:.0f}", file=sys.stdout)


if __name__ == "__main__":
    main()
