"""Conformance driven by the kserve SDK's InferenceRESTClient (v1, v2) and InferenceGRPCClient."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
from support.server import ROOT


def test_kserve_sdk_clients(iris_server):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    out = subprocess.run(
        [sys.executable, "-m", "support.kserve_clients", iris_server.http, iris_server.grpc, "sklearn-iris"],
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode()
    seen = orjson.loads(out.stdout.splitlines()[-1])
    assert seen["v1_live"] and seen["v1_model_ready"]
    assert seen["v1_predict"] == {"predictions": [1, 1]}
    assert seen["v2_live"] and seen["v2_ready"] and seen["v2_model_ready"]
    for key in ("v2_infer_False_False", "v2_infer_False_True", "v2_infer_True_False", "v2_infer_True_True"):
        assert seen[key] == {"id": "sdk-1", "data": [1, 1], "name": "output-0"}, key
    assert seen["grpc_live"] and seen["grpc_ready"] and seen["grpc_model_ready"]
    assert seen["grpc_infer"] == {"id": "sdk-1", "data": [1, 1]}
    assert seen["grpc_infer_typed"] == {"id": "typed", "data": [1, 1]}
