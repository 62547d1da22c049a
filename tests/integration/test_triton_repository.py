"""A directory in Triton's layout served unchanged by `modelplane serve --model-dir`: the config's tensors, several
versions at once by the version policy (`/v2/models/{m}/versions/{v}` over REST and gRPC, metadata listing them),
TorchScript named by its config, a TensorFlow SavedModel, and a reload that adds a version while requests keep
being answered."""

from __future__ import annotations

import threading

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from support import server as srv
from support import tensor_models as tm
from tritonclient.utils import InferenceServerException

X = np.random.default_rng(5).random((2, 4), dtype=np.float32)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return tm.triton_repository(tmp_path_factory.mktemp("triton") / "repo")


@pytest.fixture(scope="module")
def server(repo, logs):
    running = srv.start(["serve", "--model-dir", str(repo), "--intra_op_threads", "1"], logs)
    yield running
    running.stop()


def scores(result) -> np.ndarray:
    return result.as_numpy("scores")


def test_metadata_lists_the_versions_and_the_configs_tensors(server):
    with httpclient.InferenceServerClient(server.http_hostport) as client:
        meta = client.get_model_metadata("mlp")
        assert meta["versions"] == ["1", "2"] and meta["platform"] == "onnxruntime_onnx"
        assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
        assert client.get_model_metadata("mlp", model_version="1")["versions"] == ["1", "2"]
        scripted = client.get_model_metadata("scripted")
    assert scripted["inputs"] == [{"name": "INPUT__0", "datatype": "FP32", "shape": [-1, 4]}]
    assert scripted["outputs"] == [{"name": "OUTPUT__0", "datatype": "FP32", "shape": [-1, 3]}]


def test_each_version_answers_at_its_own_path_over_rest_and_grpc(server):
    with httpclient.InferenceServerClient(server.http_hostport) as client:
        inp = httpclient.InferInput("x", [2, 4], "FP32")
        inp.set_data_from_numpy(X)
        v1 = client.infer("mlp", [inp], model_version="1")
        latest = client.infer("mlp", [inp])
    assert np.allclose(scores(v1), tm.mlp(X), atol=1e-5)  # version 1 holds the reference weights
    assert not np.allclose(scores(latest), tm.mlp(X), atol=1e-3)  # version 2, the latest, has other weights
    assert latest.get_response()["model_version"] == "2"
    with grpcclient.InferenceServerClient(server.grpc) as client:
        inp = grpcclient.InferInput("x", [2, 4], "FP32")
        inp.set_data_from_numpy(X)
        assert np.allclose(scores(client.infer("mlp", [inp], model_version="1")), tm.mlp(X), atol=1e-5)
        with pytest.raises(InferenceServerException) as missing:
            client.infer("mlp", [inp], model_version="7")
    assert missing.value.status() == "StatusCode.NOT_FOUND"
    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": X.ravel().tolist()}]}
    r = httpx.post(f"{server.http}/v2/models/mlp/versions/7/infer", json=body)
    assert r.status_code == 404 and "error" in r.json()


def test_torchscript_is_fed_by_the_configs_names(server):
    with grpcclient.InferenceServerClient(server.grpc) as client:
        inp = grpcclient.InferInput("INPUT__0", [2, 4], "FP32")
        inp.set_data_from_numpy(X)
        out = client.infer("scripted", [inp]).as_numpy("OUTPUT__0")
    assert np.allclose(out, tm.mlp(X), atol=1e-5)


def test_a_savedmodel_version_over_grpc_and_tf_servings_v1(server):
    with grpcclient.InferenceServerClient(server.grpc) as client:
        inp = grpcclient.InferInput("x", [2, 4], "FP32")
        inp.set_data_from_numpy(X)
        assert np.allclose(client.infer("tfmlp", [inp]).as_numpy("scores"), tm.mlp(X), atol=1e-5)
        assert client.get_model_metadata("tfmlp", as_json=True)["platform"] == "tensorflow_savedmodel"
    v1 = httpx.post(f"{server.http}/v1/models/tfmlp:predict", json={"instances": X.tolist()})
    assert np.allclose(v1.json()["predictions"], tm.mlp(X), atol=1e-5)


def test_a_reload_adds_a_version_while_requests_keep_being_answered(repo, logs, tmp_path):
    running = srv.start(["serve", "--model-dir", str(repo), "--intra_op_threads", "1"], logs)
    try:
        failures: list[str] = []
        answered = [0]
        stop = threading.Event()
        body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": X.ravel().tolist()}]}

        def load() -> None:
            with httpx.Client() as client:
                while not stop.is_set():
                    r = client.post(f"{running.http}/v2/models/mlp/versions/1/infer", json=body)
                    if r.status_code != 200:
                        failures.append(r.text)
                    answered[0] += 1

        worker = threading.Thread(target=load)
        worker.start()
        try:
            tm.onnx_mlp(repo / "mlp" / "3", hidden=32)
            r = httpx.post(f"{running.http}/v2/repository/models/mlp/load", timeout=60)
            assert r.status_code == 200, r.text
            meta = httpx.get(f"{running.http}/v2/models/mlp").json()
            assert meta["versions"] == ["1", "2", "3"]
            latest = httpx.post(f"{running.http}/v2/models/mlp/infer", json=body).json()
            assert latest["model_version"] == "3"
        finally:
            stop.set()
            worker.join()
        assert answered[0] > 0 and failures == []
    finally:
        running.stop()
        import shutil

        shutil.rmtree(repo / "mlp" / "3", ignore_errors=True)
