"""Benchmark: many models in one server (issue 18).

1. `zipf`: 100,000 registered scikit-learn trees of mixed sizes (a few KB to a few MB), the model cache at 25% of
   their total charge, Zipf(1.1) traffic from a separate process (mm_client.py): req/s, hit ratio against an ideal
   byte-LRU of the same capacity replayed over the same trace, request p50/p99 for hits and misses, load time, RSS
   against the capacity, errors.
2. `repository`: 1,000 and 5,000 models loaded one by one through the V2 repository API — modelplane (then all
   unloaded, RSS again), KServe 0.21's ModelRepository as its sklearnserver uses it, MLServer 1.7.1 (a sample of
   loads: each takes seconds). Per-load time and RSS.

Every server runs from the virtualenvs bench_peers.py builds (the same scikit-learn). Usage:

    python benchmarks/bench_multimodel.py [--only zipf|repository] [--models 100000] [--duration 60] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import OrderedDict
from pathlib import Path

from bench_peers import HERE, RESULTS, Server, iris_setup, venv

POOL = RESULTS / "mm-pool"
CLASSES = ((0.70, 12, 100), (0.25, 100, 1600), (0.05, 1600, 20000))  # share, tree samples (min, max)


def build_pool(out: Path, files: int = 300, seed: int = 3) -> None:
    """Runs in the benchmark venv: `files` regression trees (4 features) whose sizes follow CLASSES; writes
    pool.json with each tree's size as the server measures it (its pickled size)."""
    import joblib
    import numpy as np
    from sklearn.tree import DecisionTreeRegressor

    from modelplane.runtimes.base import pickled_size

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    meta = []
    for i in range(files):
        share = rng.random()
        cls = 0 if share < CLASSES[0][0] else 1 if share < CLASSES[0][0] + CLASSES[1][0] else 2
        lo, hi = CLASSES[cls][1:]
        n = int(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        x = rng.random((n, 4))
        tree = DecisionTreeRegressor(random_state=i).fit(x, rng.random(n))
        joblib.dump(tree, out / f"p{i}.joblib")
        meta.append({"file": f"p{i}.joblib", "class": cls, "bytes": pickled_size(tree)})
    (out / "pool.json").write_text(json.dumps(meta))


def build_repo(root: Path, models: int, pool: list[dict], seed: int = 11) -> tuple[list[int], list[int]]:
    """`models` directories, each with a hard link to one pool file (disk holds the pool once; every model loads
    its own copy). Returns each model's charge — what the server charges it (measured size + per-model overhead) —
    and its size class."""
    import random

    from modelplane.server.multimodel import OVERHEAD_BYTES

    rnd = random.Random(seed)
    by_class = [[p for p in pool if p["class"] == c] for c in range(3)]
    charges, classes = [], []
    marker = root / f".built-{models}"
    for i in range(models):
        cls = rnd.choices(range(3), weights=[c[0] for c in CLASSES])[0]
        pick = rnd.choice(by_class[cls])
        charges.append(pick["bytes"] + OVERHEAD_BYTES)
        classes.append(cls)
        if not marker.exists():
            d = root / f"m{i}"
            d.mkdir(parents=True, exist_ok=True)
            target = d / "model.joblib"
            if not target.exists():
                os.link(POOL / pick["file"], target)
    marker.touch()
    return charges, classes


def ideal_lru_hits(trace: list[int], charges: list[int], capacity: int, warm: list[int] = ()) -> float:
    """Hit ratio over `trace` of a byte-capacity LRU that loads instantly, warmed by replaying `warm` first (the
    server's own warm-up traffic)."""
    lru: OrderedDict[int, int] = OrderedDict()
    used = hits = 0
    for i, m in enumerate([*warm, *trace]):
        if m in lru:
            hits += i >= len(warm)
            lru.move_to_end(m)
            continue
        while used + charges[m] > capacity and lru:
            _, size = lru.popitem(last=False)
            used -= size
        lru[m] = charges[m]
        used += charges[m]
    return hits / max(1, len(trace))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))]


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("modelplane_model_cache") and " " in line:
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def histogram_quantile(metrics: dict[str, float], name: str, q: float, size: str | None = None) -> float:
    """The q-quantile of a histogram from its buckets (summed over its `size` label, or of one size)."""
    buckets_by_le: dict[float, float] = {}
    total = 0.0
    for k, v in metrics.items():
        if size is not None and f'size="{size}"' not in k:
            continue
        if k.startswith(f"{name}_bucket"):
            le = float(k.split('le="')[1].split('"')[0])
            buckets_by_le[le] = buckets_by_le.get(le, 0.0) + v
        elif k.startswith(f"{name}_count"):
            total += v
    buckets = sorted(buckets_by_le.items())
    if not total:
        return float("nan")
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets:
        if n >= q * total:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (q * total - prev_n) / max(n - prev_n, 1e-9)
        prev_le, prev_n = le, n
    return prev_le


def prepare(args: argparse.Namespace, py: str) -> tuple[Path, list[int], list[int], int]:
    """The pool, the repository, each model's charge and class, and the total capacity."""
    if not (POOL / "pool.json").exists():
        subprocess.run([py, __file__, "build-pool"], check=True)
    pool = json.loads((POOL / "pool.json").read_text())
    repo = RESULTS / "mm-repo"
    charges, classes = build_repo(repo, args.models, pool)
    capacity = int(sum(charges) * args.capacity_share)
    print(
        f"{args.models} models: {sum(charges) / 2**30:.2f} GiB in all, capacity {capacity / 2**30:.2f} GiB", flush=True
    )
    return repo, charges, classes, capacity


def traffic(args: argparse.Namespace, port: int, prefix: str = "") -> tuple[dict, list[int]]:
    """Warm-up traffic (its trace), then the measured run (its results), from separate processes."""
    out = RESULTS / "mm-client.json"
    client = [sys.executable, str(HERE / "mm_client.py"), "--ports", str(port), "--models", str(args.models)]
    client += ["--concurrency", str(args.concurrency), "--prefix", prefix]
    warm: list[int] = []
    if args.warmup:  # fill the cache first: the measured run is the steady state, with evictions
        subprocess.run([*client, "--duration", str(args.warmup), "--seed", "99", "--out", str(out)], check=True)
        warm = json.loads(out.read_text())["sent"]
    return {"client": client, "out": out}, warm


def measure(plan: dict, args: argparse.Namespace) -> dict:
    subprocess.run([*plan["client"], "--duration", str(args.duration), "--out", str(plan["out"])], check=True)
    return json.loads(plan["out"].read_text())


def summarize(res: dict, warm: list[int], charges: list[int], classes: list[int], capacity: int, delta: dict) -> dict:
    ok = [s == 200 for s in res["status"]]
    rows = list(zip(res["ms"], res["sent"], res["cache"], ok, strict=True))
    hit_ms = [ms for ms, _, c, good in rows if good and c == "hit"]
    miss_ms = [ms for ms, _, c, good in rows if good and c == "miss"]
    by_class = {
        f"miss_p50_ms_class{k}": pct([ms for ms, m, c, good in rows if good and c == "miss" and classes[m] == k], 0.5)
        for k in range(3)
    }
    name = "modelplane_model_cache_load_seconds"
    n = len(rows)
    return {
        "capacity_bytes": capacity,
        "requests": n,
        "rps": n / res["seconds"],
        "errors": n - sum(ok),
        "hit_ratio": len(hit_ms) / max(1, sum(ok)),
        "ideal_lru_hit_ratio": ideal_lru_hits(res["sent"], charges, capacity, warm),
        "hit_p50_ms": pct(hit_ms, 0.5),
        "hit_p99_ms": pct(hit_ms, 0.99),
        "miss_p50_ms": pct(miss_ms, 0.5),
        "miss_p99_ms": pct(miss_ms, 0.99),
        **by_class,
        "load_p50_ms": histogram_quantile(delta, name, 0.5) * 1000,
        "load_p99_ms": histogram_quantile(delta, name, 0.99) * 1000,
        **{
            f"load_{q}_ms_{size}": histogram_quantile(delta, name, float(f"0.{q[1:]}"), size) * 1000
            for size in ("small", "medium", "large")
            for q in ("p50", "p99")
        },
        "loads": sum(v for k, v in delta.items() if k.startswith(f"{name}_count")),
        "evictions": delta.get("modelplane_model_cache_evictions_total", 0),
    }


def delta_of(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


def zipf(args: argparse.Namespace, py: str) -> dict:
    """One `modelplane serve` process, clients straight to it."""
    repo, charges, classes, capacity = prepare(args, py)
    port = 9740
    argv = [py, "-m", "modelplane", "serve", "--model-dir", str(repo), "--http-port", str(port)]
    argv += ["--grpc-port", str(port + 1), "--model-cache-bytes", str(capacity), "--log-level", "warning"]
    server = Server("mm-modelplane", argv, f"http://127.0.0.1:{port}/v2/health/ready")
    t0 = time.time()
    server.start()
    try:
        server.wait(600)
        started_s = time.time() - t0
        baseline = server.rss_kib() * 1024
        plan, warm = traffic(args, port)
        before = scrape(port)
        res = measure(plan, args)
        after = scrape(port)
        rss, peak = server.rss_kib() * 1024, server.rss_kib("VmHWM") * 1024
    finally:
        server.stop()
    out = summarize(res, warm, charges, classes, capacity, delta_of(before, after))
    out.update(startup_s=started_s, rss_baseline_bytes=baseline, rss_bytes=rss, rss_peak_bytes=peak)
    out["loaded_bytes"] = after.get("modelplane_model_cache_loaded_bytes", 0)
    return out


def replicas(args: argparse.Namespace, py: str, count: int) -> dict:
    """`count` replicas of one InferenceService on the platform (model routing on), each with 1/count of the
    capacity, clients through the gateway."""
    import shutil

    import yaml

    repo, charges, classes, capacity = prepare(args, py)
    home = RESULTS / f"mm-home-{count}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = {**os.environ, "MODELPLANE_HOME": str(home)}
    port, api, grpc = 9770, 9771, 9772
    up = [py, "-m", "modelplane", "up", "--port", str(port), "--api-port", str(api), "--grpc-port", str(grpc)]
    platform = Server(
        f"mm-platform-{count}",
        [*up, "--file-root", str(RESULTS)],
        f"http://127.0.0.1:{api}/healthz",
        env={"MODELPLANE_HOME": str(home)},
    )
    doc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "mm", "annotations": {"modelplane.io/model-routing": "true"}},
        "spec": {
            "predictor": {
                "minReplicas": count,
                "maxReplicas": count,
                "model": {
                    "modelFormat": {"name": "sklearn"},
                    "storageUri": str(repo),
                    "args": [f"--model-cache-bytes={capacity // count}", "--log-level=warning"],
                },
            }
        },
    }
    (home / "mm.yaml").write_text(yaml.safe_dump(doc))
    platform.start()
    try:
        platform.wait(120)
        subprocess.run([py, "-m", "modelplane", "apply", "-f", str(home / "mm.yaml")], env=env, check=True)
        deadline = time.time() + 600
        while len(_replicas(home)) < count or not all(_ready(r["http_port"]) for r in _replicas(home)):
            if time.time() > deadline:
                raise RuntimeError(f"{count} replicas not ready; see {home}")
            time.sleep(0.5)
        time.sleep(2)  # the gateway sees them ready
        pss0 = sum(_pss(r["pid"]) for r in _replicas(home))
        plan, warm = traffic(args, port, "/serving/default/mm")
        before = _scrape_all(home)
        res = measure(plan, args)
        after = _scrape_all(home)
        pss = sum(_pss(r["pid"]) for r in _replicas(home))
    finally:
        platform.stop()
    out = summarize(res, warm, charges, classes, capacity, delta_of(before, after))
    out.update(replicas=count, pss_baseline_bytes=pss0, pss_bytes=pss)
    out["loaded_bytes"] = after.get("modelplane_model_cache_loaded_bytes", 0)
    return out


def _replicas(home: Path) -> list[dict]:
    try:
        return json.loads((home / "replicas.json").read_text())["replicas"]
    except (FileNotFoundError, ValueError, KeyError):
        return []


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _pss(pid: int) -> int:
    """Proportional set size: pages shared with the zygote the replicas fork from count once, split among them."""
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return int(text.split("Pss:")[1].split()[0]) * 1024


def _scrape_all(home: Path) -> dict[str, float]:
    total: dict[str, float] = {}
    for r in _replicas(home):
        for k, v in scrape(r["http_port"]).items():
            total[k] = total.get(k, 0) + v
    return total


def main() -> None:
    if sys.argv[1:2] == ["build-pool"]:
        build_pool(POOL)
        return
    p = argparse.ArgumentParser()
    p.add_argument("--only", choices=["zipf", "replicas", "repository"])
    p.add_argument("--replicas", type=int, nargs="*", default=[1, 2, 4])
    p.add_argument("--models", type=int, default=100_000)
    p.add_argument("--capacity-share", type=float, default=0.25)
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--warmup", type=float, default=90, help="seconds of traffic before the measured run")
    p.add_argument("--out", type=Path, default=RESULTS / "multimodel.json")
    args = p.parse_args()
    py, _ = iris_setup()
    result: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    if args.only in (None, "zipf"):
        result["zipf"] = zipf(args, py)
        print(json.dumps(result["zipf"], indent=1), flush=True)
    if args.only in (None, "replicas"):
        for count in args.replicas:
            result[f"replicas {count}"] = replicas(args, py, count)
            print(json.dumps(result[f"replicas {count}"], indent=1), flush=True)
    if args.only in (None, "repository"):
        from bench_mm_repository import repository

        result["repository"] = repository(py, venv)
        print(json.dumps(result["repository"], indent=1), flush=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
