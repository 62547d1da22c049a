"""Triton's own server as a ServingRuntime: the `tritonserver` binary nvidia-pytriton ships (Python backend only,
in its own venv made by scripts/setup.sh) runs as the runtime's command on a model repository holding a
Python-backend model, and answers V2 through the gateway; its HTTP port is the replica's (8080 in the args)."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from support import tensor_models as tm
from support.observe import wait_for
from support.platform import applied

VENV = Path(__file__).resolve().parents[2] / ".cache" / "pytriton"
SERVER = VENV / "lib" / "python3.11" / "site-packages" / "pytriton" / "tritonserver"
X = np.random.default_rng(2).random((2, 4), dtype=np.float32)

pytestmark = pytest.mark.skipif(
    not (VENV / ".ready").exists(), reason="scripts/setup.sh makes .cache/pytriton (nvidia-pytriton's tritonserver)"
)

CONFIG = """
name: "mlp"
backend: "python"
max_batch_size: 8
input [ { name: "x", data_type: TYPE_FP32, dims: [ 4 ] } ]
output [ { name: "scores", data_type: TYPE_FP32, dims: [ 3 ] } ]
instance_group [ { count: 1, kind: KIND_CPU } ]
"""
MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils

W1, B1, W2, B2 = (np.asarray(v, dtype=np.float32) for v in ({w1}, {b1}, {w2}, {b2}))


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "x").as_numpy()
            y = (np.maximum(x @ W1 + B1, 0) @ W2 + B2).astype(np.float32)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("scores", y)]))
        return responses
"""


@pytest.mark.timeout(240)
def test_tritonserver_serves_a_python_backend_model_through_the_gateway(tmp_path):
    repo = tmp_path / "repo"
    (repo / "mlp" / "1").mkdir(parents=True)
    (repo / "mlp" / "config.pbtxt").write_text(CONFIG)
    weights = {k: v.tolist() for k, v in (("w1", tm.W1), ("b1", tm.B1), ("w2", tm.W2), ("b2", tm.B2))}
    (repo / "mlp" / "1" / "model.py").write_text(MODEL.format(**weights))
    runtime = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": "tritonserver"},
        "spec": {
            "supportedModelFormats": [{"name": "triton", "version": "2", "autoSelect": True, "priority": 1}],
            "protocolVersions": ["v2", "grpc-v2"],
            "containers": [
                {
                    "name": "kserve-container",
                    "image": "nvcr.io/nvidia/tritonserver:25.08-py3",
                    "command": [str(SERVER / "bin" / "tritonserver")],
                    "args": [
                        "--model-repository=/mnt/models", f"--backend-directory={SERVER / 'backends'}",
                        "--http-address=127.0.0.1", "--http-port=8080", "--allow-grpc=false", "--allow-metrics=false",
                    ],
                    "env": [{"name": "PATH", "value": f"{VENV / 'bin'}:/usr/bin:/bin"}],  # the backend's python
                }
            ],
        },
    }  # fmt: skip
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "tri"},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "triton"}, "storageUri": str(repo)}}},
    }
    with applied(tmp_path, [runtime, isvc]) as plat:
        wait_for(lambda: plat.ready("tri"), "Triton's replica ready", timeout=180)
        body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": X.ravel().tolist()}]}
        r = httpx.post(f"{plat.gateway}/serving/default/tri/v2/models/mlp/infer", json=body, timeout=30)
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        assert out["name"] == "scores" and np.allclose(np.asarray(out["data"]).reshape(2, 3), tm.mlp(X), atol=1e-5)
