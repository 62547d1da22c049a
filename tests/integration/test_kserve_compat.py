"""KServe custom models run on modelplane after changing only their import lines: KServe's custom model (V1 and V2
over REST and gRPC), its custom transformer (forwarding to a predictor in V1 or V2, mutating headers, setting
response headers) and an async predictor, each started as KServe documents — `python model.py --model_name ...`;
and `--model-class` finds a module in the current directory without PYTHONPATH."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from support import server as srv
from support import tensor_models as tm
from support.observe import wait_for

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "kserve_compat"
WEIGHTS = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.5, -1.0]], dtype=np.float32)
X = np.array([[1, 2, 3, 4], [0.5, 0.5, 0.5, 0.5]], dtype=np.float32)


def start_script(script: str, logs: Path, *args: str) -> srv.RunningServer:
    """`python <script> --model_name ... --http_port P --grpc_port Q` as KServe's docs run a custom model."""
    http, grpc = srv.free_port(), srv.free_port()
    log = logs / f"{script}-{http}.log"
    cmd = [sys.executable, str(EXAMPLES / script), *args, "--http_port", str(http), "--grpc_port", str(grpc)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    server = srv.RunningServer(proc, http, grpc, log)

    def ready() -> bool:
        assert proc.poll() is None, server.log()
        try:
            return httpx.get(f"{server.http}/v2/health/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, f"{script} ready", timeout=60)
    except BaseException:
        server.stop()
        raise
    return server


def test_the_custom_model_example_over_v1_v2_and_grpc(logs):
    server = start_script("custom_model.py", logs, "--model_name", "custom-model")
    try:
        v1 = httpx.post(f"{server.http}/v1/models/custom-model:predict", json={"instances": X.tolist()})
        assert v1.status_code == 200, v1.text
        assert np.allclose(v1.json()["outputs"][0]["data"], (X @ WEIGHTS).ravel())
        body = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": X.ravel().tolist()}]}
        v2 = httpx.post(f"{server.http}/v2/models/custom-model/infer", json=body)
        assert v2.status_code == 200, v2.text
        assert np.allclose(v2.json()["outputs"][0]["data"], (X @ WEIGHTS).ravel())
        with grpcclient.InferenceServerClient(server.grpc) as client:
            inp = grpcclient.InferInput("input-0", [2, 4], "FP32")
            inp.set_data_from_numpy(X)
            out = client.infer("custom-model", [inp]).as_numpy("output-0")
        assert np.allclose(out.ravel(), (X @ WEIGHTS).ravel())
        wrong = {"inputs": [{"name": "input-0", "shape": [1], "datatype": "INT32", "data": [1]}]}
        refused = httpx.post(f"{server.http}/v2/models/custom-model/infer", json=wrong)
        assert refused.status_code >= 400 and "unsupported datatype INT32" in refused.json()["error"]
    finally:
        server.stop()


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_the_custom_transformer_example_forwards_to_its_predictor(logs, tmp_path, protocol):
    tm.onnx_mlp(tmp_path / "predictor")
    predictor = srv.start(["serve", "--model-dir", str(tmp_path / "predictor"), "--model-name", "pixels"], logs)
    try:
        transformer = start_script(
            "custom_transformer.py", logs, "--model_name", "pixels",
            "--predictor_host", predictor.http_hostport, "--predictor_protocol", protocol,
        )  # fmt: skip
        try:
            images = [{"image": {"b64": base64.b64encode(row.tobytes()).decode()}} for row in X]
            r = httpx.post(f"{transformer.http}/v1/models/pixels:predict", json={"instances": images})
            assert r.status_code == 200, r.text
            assert np.allclose(r.json()["predictions"], tm.mlp(X), atol=1e-5)
            assert r.headers["x-transformed-by"] == "pixels"
            if protocol == "v2":  # V2 in, V2 out: the predictor's InferResponse passes through
                b64 = [base64.b64encode(row.tobytes()).decode() for row in X]
                body = {"inputs": [{"name": "images", "shape": [2], "datatype": "BYTES", "data": b64}]}
                r = httpx.post(f"{transformer.http}/v2/models/pixels/infer", json=body)
                assert r.status_code == 200, r.text
                assert np.allclose(np.asarray(r.json()["outputs"][0]["data"]).reshape(2, 3), tm.mlp(X), atol=1e-5)
        finally:
            transformer.stop()
    finally:
        predictor.stop()


def test_an_async_predict_example_returns_infer_responses(logs):
    server = start_script("async_predict.py", logs, "--model_name", "doubler")
    try:
        v1 = httpx.post(f"{server.http}/v1/models/doubler:predict", json={"instances": [[1, 2], [3, 4]]})
        assert v1.json() == {"predictions": [[2, 4], [6, 8]]}
        with grpcclient.InferenceServerClient(server.grpc) as client:
            inp = grpcclient.InferInput("input-0", [2, 2], "FP32")
            inp.set_data_from_numpy(np.array([[1, 2], [3, 4]], dtype=np.float32))
            out = client.infer("doubler", [inp]).as_numpy("doubled")
        assert out.tolist() == [[2, 4], [6, 8]]
    finally:
        server.stop()


def test_model_class_finds_a_module_in_the_current_directory(logs, tmp_path):
    (tmp_path / "mymodels.py").write_text(
        "from modelplane import Model\n\n"
        "class Hello(Model):\n"
        "    def predict(self, payload, headers=None):\n"
        "        return {'predictions': ['hello ' + str(x) for x in payload['instances']]}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    port = srv.free_port()
    cmd = [sys.executable, "-m", "modelplane", "serve", "--model-class", "mymodels:Hello", "--model-name", "hi"]
    cmd += ["--http-port", str(port), "--grpc-port", str(srv.free_port())]
    log = logs / f"cwd-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = srv.RunningServer(proc, port, 0, log)
    try:
        wait_for(lambda: srv_ok(server), "the server ready", timeout=60)
        r = httpx.post(f"{server.http}/v1/models/hi:predict", json={"instances": ["you"]})
        assert r.json() == {"predictions": ["hello you"]}
    finally:
        server.stop()


def srv_ok(server: srv.RunningServer) -> bool:
    assert server.proc.poll() is None, server.log()
    try:
        return httpx.get(f"{server.http}/v2/health/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
