"""TorchServe as a ServingRuntime (KServe's PyTorch path): a `.mar` archive in KServe's model-store layout, served
by the real `torchserve` (Java, from PyPI, in its own venv made by scripts/setup.sh) that the platform runs as the
runtime's command — its inference address from the environment (8080 there becomes the replica's port), its
readiness from the container's readinessProbe path (`/ping`) — and reached through the gateway in V2 with the
kservev2 envelope."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from support import server as srv
from support import tensor_models as tm
from support.observe import wait_for
from support.platform import applied, cli

VENV = Path(__file__).resolve().parents[2] / ".cache" / "torchserve"
X = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)

pytestmark = pytest.mark.skipif(
    not (VENV / "bin" / "torchserve").exists() or shutil.which("java") is None,
    reason="TorchServe needs Java and scripts/setup.sh's .cache/torchserve",
)


@pytest.mark.timeout(300)
def test_a_mar_served_by_torchserve_through_the_gateway(tmp_path):
    ports = {k: srv.free_port() for k in ("management", "metrics", "grpc", "grpc_management")}
    store = tm.torchserve_store(tmp_path / "model", VENV, ports)
    runtime = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": "torchserve"},
        "spec": {
            "supportedModelFormats": [{"name": "pytorch", "version": "1", "autoSelect": True, "priority": 1}],
            "protocolVersions": ["v2"],
            "containers": [
                {
                    "name": "kserve-container",
                    "image": "pytorch/torchserve-kfs:0.12.0",
                    "command": [str(VENV / "bin" / "torchserve")],
                    "args": [
                        "--start", "--foreground", "--disable-token-auth", "--model-store=/mnt/models/model-store",
                        "--ts-config=/mnt/models/config/config.properties",
                    ],
                    "env": [
                        {"name": "TS_INFERENCE_ADDRESS", "value": "http://127.0.0.1:8080"},
                        {"name": "PATH", "value": f"{VENV / 'bin'}:/usr/bin:/bin"},  # its workers' python
                    ],
                    "readinessProbe": {"httpGet": {"path": "/ping", "port": 8080}},
                }
            ],
        },
    }  # fmt: skip
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "mlp"},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "pytorch"}, "protocolVersion": "v2", "storageUri": str(store)}
            }
        },
    }
    with applied(tmp_path, [runtime, isvc]) as plat:
        body = {"id": "1", "inputs": [{"name": "input-0", "shape": [4], "datatype": "FP32", "data": X.tolist()}]}
        url = f"{plat.gateway}/serving/default/mlp/v2/models/mlp/infer"

        def answered() -> bool:  # ready by /ping once the JVM is up; the model's worker may still be starting
            return plat.ready("mlp") and httpx.post(url, json=body, timeout=30).status_code == 200

        wait_for(answered, "TorchServe to answer through the gateway", timeout=240)
        out = httpx.post(url, json=body, timeout=30).json()["outputs"][0]
        assert np.allclose(out["data"], tm.mlp(X[None, :])[0], atol=1e-5)
        assert "torchserve" in cli(plat.home, "get", "isvc", "mlp", "-o", "yaml").stdout  # the namespace's runtime
        # the command runs in a working directory of its own under the platform's home, as in its container:
        # TorchServe's logs/ lands there, not in whatever directory the platform was started from
        assert list((plat.home / "work").glob("*/logs/ts_log.log"))
