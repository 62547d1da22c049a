"""Built-in runtimes and custom classes served through `modelplane serve`, predicted over V1, V2 and gRPC."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from conftest import IRIS_V1, IRIS_V2
from support import server as srv

from modelplane.samples import iris


def _serve(logs, model_dir, name, *extra, env=None):
    return srv.start(["serve", "--model_dir", str(model_dir), "--model_name", name, *extra], logs, env=env)


@pytest.mark.parametrize(
    "kind,filename", [("xgboost", "model.bst"), ("xgboost", "model.json"), ("xgboost", "model.ubj"), ("lightgbm", None)]
)
def test_boosters(logs, tmp_path, kind, filename):
    model_dir = tmp_path / kind
    if kind == "xgboost":
        iris.train_xgboost(model_dir, filename)
    else:
        iris.train_lightgbm(model_dir)
    server = _serve(logs, model_dir, kind, "--nthread", "1")
    try:
        v1 = httpx.post(f"{server.http}/v1/models/{kind}:predict", json=IRIS_V1).json()["predictions"]
        assert np.argmax(np.asarray(v1), axis=1).tolist() == [1, 1]
        out = httpx.post(f"{server.http}/v2/models/{kind}/infer", json=IRIS_V2).json()["outputs"][0]
        assert out["shape"] == [2, 3] and out["datatype"] in ("FP32", "FP64")
        assert np.argmax(np.asarray(out["data"]).reshape(2, 3), axis=1).tolist() == [1, 1]
    finally:
        server.stop()


def test_sklearn_predict_proba_and_grpc(logs, tmp_path):
    model_dir = iris.train_sklearn(tmp_path / "proba", probability=True)
    server = _serve(logs, model_dir, "proba", env={"PREDICT_PROBA": "True"})
    try:
        probs = httpx.post(f"{server.http}/v1/models/proba:predict", json=IRIS_V1).json()["predictions"]
        assert np.asarray(probs).shape == (2, 3)
        assert np.allclose(np.asarray(probs).sum(axis=1), 1.0)
        with grpcclient.InferenceServerClient(server.grpc) as client:
            inp = grpcclient.InferInput("input-0", [2, 4], "FP32")
            inp.set_data_from_numpy(np.asarray(IRIS_V1["instances"], dtype=np.float32))
            out = client.infer("proba", [inp]).as_numpy("output-0")
        assert out.shape == (2, 3) and out.dtype == np.float64
    finally:
        server.stop()


def test_sklearn_pandas_and_multi_input(logs, tmp_path):
    """`content_type: pd` builds one DataFrame; several inputs are used together, never silently dropped."""
    import joblib
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    df = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.0, 1.0, 0.0, 1.0]})
    model = LinearRegression().fit(df, df["a"] * 2 + df["b"] * 10)
    (tmp_path / "lr").mkdir()
    joblib.dump(model, tmp_path / "lr" / "model.pkl")
    server = _serve(logs, tmp_path / "lr", "lr")
    try:
        inputs = [
            {"name": "a", "shape": [2], "datatype": "FP64", "data": [1.0, 5.0]},
            {"name": "b", "shape": [2], "datatype": "FP64", "data": [1.0, 0.0]},
        ]
        for params in ({"content_type": "pd"}, None):
            body = {"inputs": inputs, **({"parameters": params} if params else {})}
            out = httpx.post(f"{server.http}/v2/models/lr/infer", json=body).json()["outputs"][0]["data"]
            assert np.allclose(out, [12.0, 10.0])
        r = httpx.post(f"{server.http}/v1/models/lr:predict", json={"instances": [{"a": 1.0, "b": 1.0}]})
        assert np.allclose(r.json()["predictions"], [12.0])
    finally:
        server.stop()


def test_custom_model_class_from_the_cli(logs):
    server = srv.start(["serve", "--model-class", "support.models:Echo", "--model-name", "custom"], logs)
    try:
        r = httpx.post(f"{server.http}/v1/models/custom:predict", json={"instances": [[1, 2]]})
        assert r.json() == {"predictions": [[1, 2]]}
    finally:
        server.stop()


def test_kserve_flag_spellings_and_unknown_runtime_args(logs, iris_dir):
    server = srv.start(
        [
            "serve",
            "--model_dir",
            str(iris_dir),
            "--model_name",
            "m",
            "--workers",
            "1",
            "--enable_grpc",
            "false",
            "--max_asyncio_workers",
            "4",
        ],
        logs,
    )
    try:
        assert httpx.post(f"{server.http}/v1/models/m:predict", json=IRIS_V1).json() == {"predictions": [1, 1]}
    finally:
        server.stop()


def test_model_dir_with_two_model_files_reports_the_error(logs, tmp_path, iris_dir):
    import shutil

    d = tmp_path / "two"
    d.mkdir()
    shutil.copy(iris_dir / "model.joblib", d / "a.joblib")
    shutil.copy(iris_dir / "model.joblib", d / "b.joblib")
    server = srv.start(["serve", "--model_dir", str(d), "--model_name", "two"], logs, ready=False)
    try:
        r = httpx.get(f"{server.http}/v2/models/two/ready")
        assert r.status_code == 503
        index = httpx.post(f"{server.http}/v2/repository/index").json()
        assert "More than one model file" in index[0]["reason"]
    finally:
        server.stop()


def test_lazy_framework_imports():
    import subprocess
    import sys

    code = (
        "import sys; from modelplane.cli.serve import make_server; import modelplane.server.app; "
        "import modelplane.runtimes.sklearn; from modelplane.storage import provider_for; "
        "import modelplane.storage.s3, modelplane.storage.gcs, modelplane.storage.azure, modelplane.storage.hf; "
        "[provider_for(u) for u in ('s3://b/k', 'gs://b/k', 'hf://o/m', 'https://a.blob.core.windows.net/c/k')]; "
        "print(sorted(m for m in ('xgboost','lightgbm','torch','pandas','sklearn','boto3','botocore','google', "
        "'azure','huggingface_hub') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("loading", ["--load-per-worker", "--fork-after-load"])
def test_two_workers_share_the_ports_and_a_dead_worker_is_replaced(logs, iris_dir, loading):
    import os
    import signal
    import time

    import tritonclient.http as httpclient

    server = srv.start(["serve", "--model_dir", str(iris_dir), "--model_name", "m", "--workers", "2", loading], logs)
    seen: set[int] = set()
    try:
        pids: set[int] = set()
        for _ in range(40):  # fresh connections land on either worker
            r = httpx.post(f"{server.http}/v1/models/m:predict", json=IRIS_V1, headers={"connection": "close"})
            assert r.json() == {"predictions": [1, 1]}
        with grpcclient.InferenceServerClient(server.grpc) as client:
            assert client.is_model_ready("m")
        children = [int(p) for p in os.popen(f"pgrep -P {server.proc.pid}").read().split()]
        assert len(children) == 2
        seen.update(children)
        os.kill(children[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pids = {int(p) for p in os.popen(f"pgrep -P {server.proc.pid}").read().split()}
            if len(pids) == 2 and children[0] not in pids:
                break
            time.sleep(0.2)
        assert len(pids) == 2 and children[0] not in pids
        seen.update(pids)
        with httpclient.InferenceServerClient(server.http_hostport) as client:
            for _ in range(20):
                inp = httpclient.InferInput("input-0", [2, 4], "FP32")
                inp.set_data_from_numpy(np.asarray(IRIS_V1["instances"], dtype=np.float32))
                assert client.infer("m", [inp]).as_numpy("output-0").tolist() == [1, 1]
    finally:
        server.stop()
    assert server.proc.returncode is not None

    def alive(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().split(")")[-1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 15
    while any(alive(p) for p in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in seen)
