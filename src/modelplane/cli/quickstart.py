"""CLI: `modelplane quickstart` — train the iris sample if needed, serve it, and show it answering."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import httpx

IRIS_V1 = {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}


def home() -> Path:
    return Path(os.environ.get("MODELPLANE_HOME", Path.home() / ".modelplane"))


def sample_dir() -> Path:
    target = home() / "samples" / "sklearn-iris"
    if not (target / "model.joblib").exists():
        from modelplane.samples.iris import train_sklearn

        train_sklearn(target)
    return target


def announce(http_port: int, grpc_port: int, name: str) -> None:
    """Wait until the server is ready, send the sample request, print what came back and how to try it."""
    base = f"http://127.0.0.1:{http_port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    reply = httpx.post(f"{base}/v1/models/{name}:predict", json=IRIS_V1, timeout=10)
    print(
        f"\nmodelplane is serving '{name}'. Sample request:\n"
        f"  curl -s {base}/v1/models/{name}:predict -H 'content-type: application/json' \\\n"
        f"       -d '{json.dumps(IRIS_V1)}'\n"
        f"answered {reply.status_code}: {reply.text}\n"
        f"V2: POST {base}/v2/models/{name}/infer   gRPC: 127.0.0.1:{grpc_port}   metrics: {base}/metrics\n"
        "Press Ctrl+C to stop.\n",
        flush=True,
    )


def run(http_port: int, grpc_port: int, name: str = "sklearn-iris") -> None:
    from modelplane.cli.serve import make_server
    from modelplane.server.settings import ServerSettings

    model_dir = sample_dir()
    settings = ServerSettings(http_port=http_port, grpc_port=grpc_port)
    server = make_server(settings, name, str(model_dir), None, None, {})
    threading.Thread(target=announce, args=(http_port, grpc_port, name), daemon=True).start()
    server.run()
