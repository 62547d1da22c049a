"""Benchmark: the operator's ModelMesh pass under a burst — N ModelMesh InferenceServices arrive at once (a GitOps
sync, an operator restart) and the operator reconciles them over its in-memory cache and writer (the code the real
operator runs, without the API server's latency). Queued under one key per namespace, as the operator does now, the
burst is one pass; queued one key per InferenceService, as before, it is N passes over all N. Reports the passes and
the CPU seconds of each way, best of `--repeats`.

    python benchmarks/bench_mesh_pass.py [--count 100 400 1000] [--repeats 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from modelplane.backends.controller import Controller
from modelplane.backends.kubernetes.backend import ClusterBackend
from modelplane.backends.kubernetes.cache import Cache
from modelplane.backends.kubernetes.client import MemoryWriter
from modelplane.backends.kubernetes.config import ClusterConfig
from modelplane.backends.kubernetes.events import ISVC
from modelplane.backends.kubernetes.operator import Operator

RESULTS = Path(__file__).resolve().parent / "results"


def isvc(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": f"mm-{i}",
            "namespace": "ml",
            "uid": f"uid-{i}",
            "generation": 1,
            "annotations": {"serving.kserve.io/deploymentMode": "ModelMesh"},
        },
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": f"gs://models/{i}"}}},
    }


def operator() -> Operator:
    cache = Cache()
    return Operator(cache, Controller(cache, ClusterBackend(cache, MemoryWriter(), ClusterConfig())), workers=1)


async def drain(op: Operator) -> int:
    passes = 0
    while len(op.queue):
        key, _ = await op.queue.get()
        await op.controller.reconcile(*key)
        op.queue.done(key)
        passes += 1
    return passes


def coalesced(n: int) -> tuple[int, float]:
    """The operator's own queueing: every event through Operator.event, then its queue drained."""
    op = operator()
    start = time.process_time()
    for i in range(n):
        op.event(ISVC, isvc(i), deleted=False)
    passes = asyncio.run(drain(op))
    return passes, time.process_time() - start


def per_isvc(n: int) -> tuple[int, float]:
    """The previous queueing: the same documents, one reconcile per InferenceService's own key."""
    op = operator()
    start = time.process_time()
    for i in range(n):
        op.cache.seen(isvc(i))

    async def run() -> None:
        for i in range(n):
            await op.controller.reconcile("ml", f"mm-{i}")

    asyncio.run(run())
    return n, time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, nargs="+", default=[100, 400, 1000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS / "mesh-pass.json"))
    args = ap.parse_args()
    rows = []
    for n in args.count:
        new = min((coalesced(n) for _ in range(args.repeats)), key=lambda r: r[1])
        old = min((per_isvc(n) for _ in range(args.repeats if n <= 400 else 1)), key=lambda r: r[1])
        rows.append(
            {
                "count": n,
                "coalesced": {"passes": new[0], "cpu_s": round(new[1], 3)},
                "per_isvc": {"passes": old[0], "cpu_s": round(old[1], 3)},
            }
        )
        print(
            f"n={n}: one key per namespace {new[0]} pass(es) {new[1]:.3f} s CPU; "
            f"one key per isvc {old[0]} passes {old[1]:.2f} s CPU",
            flush=True,
        )
    RESULTS.mkdir(exist_ok=True)
    Path(args.out).write_text(json.dumps({"repeats": args.repeats, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
