"""The model puller the Kubernetes backend runs beside a multi-model predictor (KServe's agent with --enable-puller),
as it runs there: `modelplane puller` following a models.json that is swapped in place (as a ConfigMap volume is),
next to a real `modelplane serve --model-cache-bytes`. Models are pulled and served, a changed one is swapped in and
reloaded, a dropped one is removed and unloaded, hostile entries are skipped, a restart downloads nothing again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support import mm_models
from support import server as srv
from support.observe import wait_for


def write_list(config: Path, models: dict[str, Path | None]) -> None:
    """Replace models.json at once, as the kubelet swaps a ConfigMap volume's files."""
    entries = [
        {"modelName": n, "modelSpec": {"storageUri": str(p), "framework": "sklearn", "memory": "1Mi"} if p else {}}
        for n, p in models.items()
    ]
    tmp = config / ".models.json.tmp"
    tmp.write_text(json.dumps(entries))
    os.replace(tmp, config / "models.json")


def answer(server: srv.RunningServer, name: str) -> float | None:
    reply = httpx.post(f"{server.http}/v2/models/{name}/infer", json=mm_models.ZERO_V2, timeout=30)
    return reply.json()["outputs"][0]["data"][0] if reply.status_code == 200 else None


def start_puller(config: Path, models: Path, server: srv.RunningServer, log: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "modelplane", "puller", "--config-dir", str(config), "--model-dir", str(models)]
    argv += ["--server", server.http, "--interval", "0.2"]
    return subprocess.Popen(argv, stdout=log.open("ab"), stderr=subprocess.STDOUT)


@pytest.mark.timeout(180)
def test_the_puller_follows_the_model_list_and_tells_the_server(tmp_path: Path, logs: Path) -> None:
    repo = mm_models.repository(tmp_path / "storage", 4)
    config, models = tmp_path / "configs", tmp_path / "models"
    config.mkdir()
    models.mkdir()
    write_list(config, {"tm-a": repo / "m1", "tm-b": repo / "m2", "..": repo / "m3", "tm-empty": None})
    server = srv.start(["serve", "--model-dir", str(models), "--model-cache-bytes", "64Mi"], logs)
    puller = start_puller(config, models, server, logs / "puller.log")
    try:
        wait_for(lambda: answer(server, "tm-a") == pytest.approx(1), "tm-a pulled and served", timeout=60)
        wait_for(lambda: answer(server, "tm-b") == pytest.approx(2), "tm-b pulled and served", timeout=30)
        assert sorted(p.name for p in models.iterdir()) == ["tm-a", "tm-b"]  # `..` and the entry without a URI
        assert not (tmp_path / "m3").exists() and not (models / "tm-empty").exists()

        write_list(config, {"tm-a": repo / "m3", "tm-b": repo / "m2"})
        wait_for(lambda: answer(server, "tm-a") == pytest.approx(3), "tm-a swapped and reloaded", timeout=30)

        write_list(config, {"tm-a": repo / "m3"})
        wait_for(lambda: answer(server, "tm-b") is None, "tm-b unloaded", timeout=30)
        wait_for(lambda: not (models / "tm-b").exists(), "tm-b's files removed", timeout=10)
        marker = next((models / "tm-a").glob("SUCCESS.*"))
        before = marker.stat().st_mtime_ns

        puller.terminate()
        puller.wait(10)
        puller = start_puller(config, models, server, logs / "puller.log")
        write_list(config, {"tm-a": repo / "m3", "tm-c": repo / "broken"})
        wait_for(lambda: (models / "tm-c").exists(), "tm-c pulled after the restart", timeout=30)
        assert marker.stat().st_mtime_ns == before  # tm-a's marker said it was there: not downloaded again
        assert answer(server, "tm-a") == pytest.approx(3)
        reply = httpx.post(f"{server.http}/v2/models/tm-c/infer", json=mm_models.ZERO_V2, timeout=30)
        assert reply.status_code == 503 and "error" in reply.json()  # it cannot load: said so, nothing else breaks
        assert answer(server, "tm-a") == pytest.approx(3)
    finally:
        puller.terminate()
        puller.wait(10)
        server.stop()
