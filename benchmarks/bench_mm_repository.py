"""Benchmark part of bench_multimodel.py: N models loaded one by one through the V2 repository API (then unloaded)
— modelplane, KServe 0.21's ModelRepository, MLServer 1.7.1 — per-load time and RSS, same machine, same run."""

from __future__ import annotations

import http.client
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench_peers import HERE, RESULTS, Server

SIZES = (1000, 5000)
MLSERVER_SAMPLE = 20  # MLServer's loads take seconds each at these sizes: a sample of them


def _repo(n: int, model: Path) -> Path:
    """n copies of the iris model (hard links), each with an MLServer model-settings.json beside it."""
    root = RESULTS / f"mm-iris-{n}"
    if not (root / ".built").exists():
        for i in range(n):
            d = root / f"m{i}"
            d.mkdir(parents=True, exist_ok=True)
            if not (d / "model.joblib").exists():
                os.link(model, d / "model.joblib")
            settings = {
                "name": f"m{i}",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            }
            (d / "model-settings.json").write_text(json.dumps(settings))
        (root / ".built").touch()
    return root


def _loads(port: int, names: list[str], action: str = "load") -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    out = []
    for name in names:
        t0 = time.perf_counter()
        conn.request("POST", f"/v2/repository/models/{name}/{action}", b"{}", {"content-type": "application/json"})
        reply = conn.getresponse()
        body = reply.read()
        if reply.status != 200:
            raise RuntimeError(f"{action} {name}: {reply.status} {body[:200]!r}")
        out.append(time.perf_counter() - t0)
    conn.close()
    return out


def _stats(times: list[float]) -> dict:
    ms = sorted(t * 1000 for t in times)
    tenth = max(1, len(ms) // 10)
    return {
        "loads": len(ms),
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "first_tenth_mean_ms": statistics.mean(times[:tenth]) * 1000,
        "last_tenth_mean_ms": statistics.mean(times[-tenth:]) * 1000,
    }


def _measure(server: Server, port: int, names: list[str], unload: bool) -> dict:
    server.start()
    try:
        server.wait(900)
        _loads(port, names[-1:])  # the framework is imported: the baseline holds it, as a serving process does
        _loads(port, names[-1:], "unload")
        time.sleep(1.5)
        base = server.rss_kib() * 1024
        times = _loads(port, names[:-1])
        out = _stats(times)
        out["rss_growth_mib"] = (server.rss_kib() * 1024 - base) / 2**20
        if unload:
            _loads(port, names[:-1], "unload")
            time.sleep(2)
            out["rss_after_unload_mib"] = (server.rss_kib() * 1024 - base) / 2**20
        return out
    finally:
        server.stop()


def repository(py: str, venv: Callable[[str], Path]) -> dict:
    model = RESULTS / "iris" / "model.joblib"
    results: dict = {}
    for n in SIZES:
        repo = _repo(n, model)
        names = [f"m{i}" for i in range(n)]
        settings = {
            "http_port": 9764,
            "grpc_port": 9765,
            "metrics_port": 9766,
            "parallel_workers": 0,
            "load_models_at_startup": False,
            "model_repository_root": str(repo),
        }
        (repo / "settings.json").write_text(json.dumps(settings))  # `mlserver start DIR` reads it from the root
        ours = [
            py,
            "-m",
            "modelplane",
            "serve",
            "--model-dir",
            str(repo),
            "--http-port",
            "9760",
            "--grpc-port",
            "9761",
            "--model-cache-bytes",
            "64Gi",
            "--log-level",
            "warning",
        ]
        kserve = [
            str(venv("kserve")),
            str(HERE / "peer_kserve_repo.py"),
            "--model_dir",
            str(repo),
            "--http_port",
            "9762",
            "--grpc_port",
            "9763",
        ]
        mlserver = [str(venv("mlserver").parent / "mlserver"), "start", str(repo)]
        for label, argv, port, ready, sample in (
            ("modelplane", ours, 9760, "ready", names),
            ("kserve", kserve, 9762, "ready", names),
            ("mlserver", mlserver, 9764, "live", names[: MLSERVER_SAMPLE + 1]),
        ):
            server = Server(f"mm-repo-{label}-{n}", argv, f"http://127.0.0.1:{port}/v2/health/{ready}")
            results[f"{label} {n}"] = _measure(server, port, sample, unload=label != "mlserver")
            print(n, label, results[f"{label} {n}"], flush=True)
    return results
