"""Conformance driven by the unmodified tritonclient (HTTP and gRPC) against real modelplane servers."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

IRIS = np.array([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]], dtype=np.float32)


@pytest.fixture(scope="module")
def http(iris_server):
    with httpclient.InferenceServerClient(iris_server.http_hostport) as client:
        yield client


@pytest.fixture(scope="module")
def grpc(iris_server):
    with grpcclient.InferenceServerClient(iris_server.grpc) as client:
        yield client


@pytest.fixture(scope="module")
def echo_http(test_models_server):
    with httpclient.InferenceServerClient(test_models_server.http_hostport) as client:
        yield client


@pytest.fixture(scope="module")
def echo_grpc(test_models_server):
    with grpcclient.InferenceServerClient(test_models_server.grpc) as client:
        yield client


def _iris_inputs(module, binary: bool | None):
    inp = module.InferInput("input-0", list(IRIS.shape), "FP32")
    if binary is None:
        inp.set_data_from_numpy(IRIS)
    else:
        inp.set_data_from_numpy(IRIS, binary_data=binary)
    return [inp]


def test_http_health_and_metadata(http):
    assert http.is_server_live() and http.is_server_ready() and http.is_model_ready("sklearn-iris")
    assert not http.is_model_ready("nope")
    assert http.get_server_metadata()["name"] == "modelplane"
    assert http.get_model_metadata("sklearn-iris")["name"] == "sklearn-iris"


@pytest.mark.parametrize("binary_in", [True, False])
@pytest.mark.parametrize("binary_out", [True, False])
def test_http_infer_binary_and_json(http, binary_in, binary_out):
    outputs = [httpclient.InferRequestedOutput("output-0", binary_data=binary_out)]
    result = http.infer("sklearn-iris", _iris_inputs(httpclient, binary_in), outputs=outputs)
    assert result.as_numpy("output-0").tolist() == [1, 1]


def test_http_infer_default_all_binary(http):
    result = http.infer("sklearn-iris", _iris_inputs(httpclient, None))
    assert result.as_numpy("output-0").tolist() == [1, 1]
    assert result.get_response()["outputs"][0]["parameters"]["binary_data_size"] == 16


def test_http_errors_reach_the_client(http):
    with pytest.raises(InferenceServerException, match="does not exist"):
        http.infer("nope", _iris_inputs(httpclient, True))
    with pytest.raises(InferenceServerException, match="Unexpected inference output"):
        http.infer("sklearn-iris", _iris_inputs(httpclient, True), outputs=[httpclient.InferRequestedOutput("x")])


def test_grpc_health_and_metadata(grpc):
    assert grpc.is_server_live() and grpc.is_server_ready() and grpc.is_model_ready("sklearn-iris")
    meta = grpc.get_server_metadata()
    assert meta.name == "modelplane" and "binary_tensor_data" in meta.extensions
    assert grpc.get_model_metadata("sklearn-iris").name == "sklearn-iris"
    with pytest.raises(InferenceServerException, match="does not exist"):
        grpc.is_model_ready("nope")


def test_grpc_infer(grpc):
    result = grpc.infer("sklearn-iris", _iris_inputs(grpcclient, None), request_id="r1")
    assert result.as_numpy("output-0").tolist() == [1, 1]
    assert result.get_response().id == "r1"


def test_grpc_infer_unknown_model_is_not_found(grpc):
    with pytest.raises(InferenceServerException) as info:
        grpc.infer("nope", _iris_inputs(grpcclient, None))
    assert info.value.status() == "StatusCode.NOT_FOUND"


@pytest.mark.parametrize(
    "dtype,datatype",
    [
        (np.float16, "FP16"),
        (np.float64, "FP64"),
        (np.int8, "INT8"),
        (np.uint64, "UINT64"),
        (np.bool_, "BOOL"),
        (np.object_, "BYTES"),
    ],
)
def test_every_datatype_through_both_clients(echo_http, echo_grpc, dtype, datatype):
    if dtype is np.object_:
        data = np.array([b"\x00\xffraw", b"text"], dtype=object).reshape(2, 1)
    else:
        data = np.arange(6).reshape(2, 3).astype(dtype)
    for module, client in ((httpclient, echo_http), (grpcclient, echo_grpc)):
        inp = module.InferInput("x", list(data.shape), datatype)
        inp.set_data_from_numpy(data)
        result = client.infer("echo", [inp])
        out = result.as_numpy("x_out")
        assert out.shape == data.shape
        assert out.tolist() == data.tolist()


def test_bf16_through_both_clients(echo_http, echo_grpc):
    # BF16 travels as 16-bit words; the model sees float32 values (exact for these numbers)
    import ml_dtypes  # installed with tritonclient, which needs it for BF16

    data = np.array([1.0, -2.5, 3.0], dtype=ml_dtypes.bfloat16)
    for module, client in ((httpclient, echo_http), (grpcclient, echo_grpc)):
        inp = module.InferInput("x", [3], "BF16")
        inp.set_data_from_numpy(data)
        result = client.infer("echo", [inp])
        assert result.as_numpy("x_out").astype(np.float32).tolist() == [1.0, -2.5, 3.0]


def test_repository_over_both_clients(logs, tmp_path):
    from support import server as srv

    from modelplane.samples.iris import train_sklearn

    train_sklearn(tmp_path / "repo" / "iris-a")
    train_sklearn(tmp_path / "repo" / "iris-b")
    server = srv.start(["serve", "--model-dir", str(tmp_path / "repo")], logs)
    try:
        with (
            httpclient.InferenceServerClient(server.http_hostport) as h,
            grpcclient.InferenceServerClient(server.grpc) as g,
        ):
            assert {m["name"] for m in h.get_model_repository_index()} == {"iris-a", "iris-b"}
            h.unload_model("iris-a")
            assert not h.is_model_ready("iris-a")
            index = {m["name"]: m["state"] for m in h.get_model_repository_index()}
            assert index == {"iris-a": "UNAVAILABLE", "iris-b": "READY"}
            g.load_model("iris-a")
            assert g.is_model_ready("iris-a")
            g.unload_model("iris-b")
            assert {m.name: m.state for m in g.get_model_repository_index().models} == {
                "iris-a": "READY",
                "iris-b": "UNAVAILABLE",
            }
            h.load_model("iris-b")
            assert h.infer("iris-b", _iris_inputs(httpclient, True)).as_numpy("output-0").tolist() == [1, 1]
            with pytest.raises(InferenceServerException):
                g.load_model("not-in-repo")
    finally:
        server.stop()
