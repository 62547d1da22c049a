"""Benchmark load generator for bench_multimodel.py: Zipf-distributed V2 requests over many models, from a process
of its own, on keep-alive HTTP/1.1 connections (asyncio streams; no client library in the way).

Usage: python mm_client.py --ports P[,P2…] --models N --duration S --concurrency C --out FILE [--zipf 1.1]
       [--prefix /serving/default/mm]
Each worker owns one connection to one port (workers spread over the ports). Writes the trace in send order (model
index per request), per-request latency, the server's `x-model-cache` answer, and the status codes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import numpy as np

BODY = b'{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64","data":[0.1,0.2,0.3,0.4]}]}'


def zipf_trace(models: int, a: float, length: int, seed: int) -> np.ndarray:
    """`length` model indexes: rank k drawn with probability ∝ k^-a, ranks mapped to models by a fixed shuffle (so
    popularity is independent of a model's size)."""
    rng = np.random.default_rng(seed)
    weights = np.arange(1, models + 1, dtype=np.float64) ** -a
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    ranks = np.searchsorted(cdf, rng.random(length))
    return rng.permutation(models)[ranks]


async def worker(port: int, prefix: str, trace: np.ndarray, cursor: list[int], stop: float, out: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < stop:
            i = cursor[0]
            cursor[0] += 1
            model = int(trace[i % len(trace)])
            head = (
                f"POST {prefix}/v2/models/m{model}/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                f"content-length: {len(BODY)}\r\n\r\n"
            ).encode()
            t0 = time.perf_counter()
            writer.write(head + BODY)
            status_line = await reader.readline()
            length, cache = 0, ""
            while (line := await reader.readline()) not in (b"\r\n", b""):
                key, _, value = line.decode("latin-1").partition(":")
                key = key.strip().lower()
                if key == "content-length":
                    length = int(value)
                elif key == "x-model-cache":
                    cache = value.strip()
            await reader.readexactly(length)
            elapsed = time.perf_counter() - t0
            status = int(status_line.split()[1])
            out["sent"].append(model)
            out["ms"].append(elapsed * 1000)
            out["cache"].append(cache)
            out["status"].append(status)
    finally:
        writer.close()


async def run(args: argparse.Namespace) -> dict:
    ports = [int(p) for p in args.ports.split(",")]
    trace = zipf_trace(args.models, args.zipf, 4_000_000, args.seed)
    out: dict = {"sent": [], "ms": [], "cache": [], "status": []}
    cursor = [0]
    stop = time.monotonic() + args.duration
    started = time.monotonic()
    await asyncio.gather(
        *(worker(ports[i % len(ports)], args.prefix, trace, cursor, stop, out) for i in range(args.concurrency))
    )
    out["seconds"] = time.monotonic() - started
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ports", required=True)
    p.add_argument("--models", type=int, required=True)
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--zipf", type=float, default=1.1)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", required=True)
    p.add_argument("--prefix", default="", help="path prefix, e.g. /serving/default/mm through the gateway")
    args = p.parse_args()
    try:
        import uvloop

        result = uvloop.run(run(args))
    except ImportError:
        result = asyncio.run(run(args))
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
