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


def _wait_ok(url: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)


def announce(http_port: int, grpc_port: int, name: str) -> None:
    """Wait until the server is ready, send the sample request, print what came back and how to try it."""
    base = f"http://127.0.0.1:{http_port}"
    _wait_ok(f"{base}/v2/health/ready")
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


SAMPLE_ISVC = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: sklearn-iris
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      storageUri: {uri}
"""


def run(http_port: int, grpc_port: int, name: str = "sklearn-iris") -> None:
    """The model server alone, without the control plane (`modelplane quickstart --server-only`)."""
    from modelplane.cli.serve import make_server
    from modelplane.server.settings import ServerSettings

    model_dir = sample_dir()
    settings = ServerSettings(http_port=http_port, grpc_port=grpc_port)
    server = make_server(settings, name, str(model_dir), None, None, {})
    threading.Thread(target=announce, args=(http_port, grpc_port, name), daemon=True).start()
    server.run()


def apply_sample(api: str, gateway: str) -> None:
    """Apply KServe's sklearn-iris InferenceService (storageUri: the local sample), wait until Ready, predict."""
    import yaml

    manifest = home() / "samples" / "sklearn-iris.yaml"
    manifest.write_text(SAMPLE_ISVC.format(uri=sample_dir()))
    path = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"
    _wait_ok(f"{api}/healthz")
    from modelplane.backends.local.auth import read_token

    auth = {"authorization": f"Bearer {read_token(home())}"}
    doc = yaml.safe_load(manifest.read_text())
    httpx.post(f"{api}{path}?apply=true", json=doc, headers=auth, timeout=10).raise_for_status()
    for _ in range(600):
        status = httpx.get(f"{api}{path}/sklearn-iris", headers=auth, timeout=5).json().get("status") or {}
        if any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])):
            break
        time.sleep(0.1)
    url = f"{gateway}/serving/default/sklearn-iris/v1/models/sklearn-iris:predict"
    reply = httpx.post(url, json=IRIS_V1, timeout=10)
    print(
        f"\nmodelplane is up: gateway {gateway}, control-plane API {api}, home {home()}.\n"
        f"Applied {manifest} (KServe's sklearn-iris sample); it is Ready. Sample request through the gateway:\n"
        f"  curl -s {url} -H 'content-type: application/json' \\\n"
        f"       -d '{json.dumps(IRIS_V1)}'\n"
        f"answered {reply.status_code}: {reply.text}\n"
        f"In another terminal: {_cli()} get isvc   (also: describe isvc sklearn-iris, apply -f my-isvc.yaml)\n"
        "Press Ctrl+C to stop (replicas stop with the platform).\n",
        flush=True,
    )


def _cli() -> str:
    """The command as the user can type it: this interpreter's `modelplane`, with a non-default home spelled out."""
    import shutil
    import sys

    exe = Path(sys.executable).parent / "modelplane"
    command = "modelplane" if shutil.which("modelplane") == str(exe) else str(exe)
    if os.environ.get("MODELPLANE_HOME"):
        command = f"MODELPLANE_HOME={os.environ['MODELPLANE_HOME']} {command}"
    return command


def run_platform(port: int, api_port: int, grpc_port: int = 8081) -> None:
    import asyncio

    from modelplane.backends.local.platform import PlatformConfig, serve

    sample_dir()
    os.environ.setdefault("MODELPLANE_FILE_ROOTS", os.pathsep.join((str(Path.home()), str(home()))))
    gateway, api = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{api_port}"
    threading.Thread(target=apply_sample, args=(api, gateway), daemon=True).start()
    asyncio.run(serve(PlatformConfig(gateway_port=port, api_port=api_port, grpc_port=grpc_port)))
