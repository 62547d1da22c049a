"""gRPC V2 with plain grpcio against a real server: typed/raw contents, statuses, limits, parameters."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from modelplane.grpcproto import inference_pb2 as pb
from modelplane.grpcproto import inference_pb2_grpc as pb_grpc


@pytest.fixture(scope="module", params=["modelplane", "grpcio"])
def stub(request, logs):
    """The test models behind each gRPC front end (--grpc-server): both must answer alike."""
    from support import server as srv

    models = ["Echo:echo", "AsyncAdder:adder", "Failing:failing", "Explainer:explainer", "NeverReady:broken"]
    server = srv.start([*models, "--grpc-server", request.param], logs, module="support.launch", ready=False)
    try:
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        with grpc.insecure_channel(server.grpc, options=options) as channel:
            yield pb_grpc.GRPCInferenceServiceStub(channel)
    finally:
        server.stop()


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_typed_contents_in_typed_out(stub):
    req = pb.ModelInferRequest(model_name="echo", id="t1")
    inp = req.inputs.add(name="a", datatype="INT32", shape=[2, 2])
    inp.contents.int_contents.extend([1, 2, 3, 4])
    words = req.inputs.add(name="w", datatype="BYTES", shape=[2])
    words.contents.bytes_contents.extend([b"\xffraw", b"hi"])
    res = stub.ModelInfer(req)
    assert res.id == "t1" and not res.raw_output_contents
    assert list(res.outputs[0].contents.int_contents) == [1, 2, 3, 4]
    assert list(res.outputs[0].shape) == [2, 2]
    assert list(res.outputs[1].contents.bytes_contents) == [b"\xffraw", b"hi"]
    assert res.parameters["echoed"].int64_param == 2


def test_raw_in_raw_out(stub):
    data = np.arange(6, dtype="<f8")
    req = pb.ModelInferRequest(model_name="echo", raw_input_contents=[data.tobytes()])
    req.inputs.add(name="a", datatype="FP64", shape=[3, 2])
    res = stub.ModelInfer(req)
    assert not res.outputs[0].HasField("contents")
    assert np.frombuffer(res.raw_output_contents[0], dtype="<f8").tolist() == data.tolist()


def test_fp16_typed_request_is_rejected_and_raw_fp16_works(stub):
    req = pb.ModelInferRequest(model_name="echo")
    req.inputs.add(name="h", datatype="FP16", shape=[1])
    code, details = _code(lambda: stub.ModelInfer(req))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "raw" in details
    raw = pb.ModelInferRequest(model_name="echo", raw_input_contents=[np.array([0.5], "<f2").tobytes()])
    raw.inputs.add(name="h", datatype="FP16", shape=[1])
    assert stub.ModelInfer(raw).raw_output_contents[0] == np.array([0.5], "<f2").tobytes()


@pytest.mark.parametrize(
    "case",
    [
        "count mismatch",
        "contents with raw",
        "wrong byte size",
        "unknown datatype",
        "negative shape",
        "typed count mismatch",
        "no inputs",
        "int8 overflow",
    ],
)
def test_invalid_requests_are_invalid_argument(stub, case):
    req = pb.ModelInferRequest(model_name="echo")
    if case == "count mismatch":
        req.inputs.add(name="a", datatype="INT32", shape=[1])
        req.inputs.add(name="b", datatype="INT32", shape=[1])
        req.raw_input_contents.append(b"\x00" * 4)
    elif case == "contents with raw":
        inp = req.inputs.add(name="a", datatype="INT32", shape=[1])
        inp.contents.int_contents.append(1)
        req.raw_input_contents.append(b"\x00" * 4)
    elif case == "wrong byte size":
        req.inputs.add(name="a", datatype="INT32", shape=[2])
        req.raw_input_contents.append(b"\x00" * 5)
    elif case == "unknown datatype":
        req.inputs.add(name="a", datatype="COMPLEX", shape=[1])
    elif case == "negative shape":
        req.inputs.add(name="a", datatype="INT32", shape=[-1])
    elif case == "typed count mismatch":
        req.inputs.add(name="a", datatype="INT32", shape=[3]).contents.int_contents.extend([1, 2])
    elif case == "int8 overflow":
        req.inputs.add(name="a", datatype="INT8", shape=[1]).contents.int_contents.append(1000)
    code, details = _code(lambda: stub.ModelInfer(req))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert details


def test_status_codes(stub):
    assert _code(lambda: stub.ModelReady(pb.ModelReadyRequest(name="nope")))[0] == grpc.StatusCode.NOT_FOUND
    assert stub.ModelReady(pb.ModelReadyRequest(name="broken")).ready is False
    req = pb.ModelInferRequest(model_name="broken")
    req.inputs.add(name="a", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    assert _code(lambda: stub.ModelInfer(req))[0] == grpc.StatusCode.UNAVAILABLE
    req.model_name = "failing"
    code, details = _code(lambda: stub.ModelInfer(req))
    assert (code, details) == (grpc.StatusCode.INTERNAL, "RuntimeError : boom!")
    assert stub.ServerReady(pb.ServerReadyRequest()).ready is False  # "broken" never loaded
    assert stub.ServerLive(pb.ServerLiveRequest()).live is True


def test_parameters_round_trip_all_kinds(stub):
    req = pb.ModelInferRequest(model_name="echo")
    req.inputs.add(name="a", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    for key, field, value in [
        ("b", "bool_param", True),
        ("i", "int64_param", -3),
        ("s", "string_param", "x"),
        ("d", "double_param", 0.25),
        ("u", "uint64_param", 2**64 - 1),
    ]:
        setattr(req.parameters[key], field, value)
    assert stub.ModelInfer(req).outputs[0].name == "a_out"


def test_versioned_model_ready_and_metadata(stub):
    assert stub.ModelReady(pb.ModelReadyRequest(name="echo", version="1")).ready
    assert (
        _code(lambda: stub.ModelReady(pb.ModelReadyRequest(name="echo", version="9")))[0] == grpc.StatusCode.NOT_FOUND
    )
    meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="echo"))
    assert list(meta.versions) == ["1"] and meta.inputs[0].name == "x" and list(meta.inputs[0].shape) == [-1, 4]


@pytest.mark.parametrize("front_end", ["modelplane", "grpcio"])
def test_message_size_limit(logs, front_end):
    from support import server as srv

    args = ["Echo:echo", "--grpc-max-message-bytes", "100000", "--grpc-server", front_end]
    server = srv.start(args, logs, module="support.launch")
    try:
        with grpc.insecure_channel(server.grpc) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            req = pb.ModelInferRequest(model_name="echo", raw_input_contents=[b"\x00" * 200_000])
            req.inputs.add(name="a", datatype="UINT8", shape=[200_000])
            assert _code(lambda: stub.ModelInfer(req))[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
            req = pb.ModelInferRequest(model_name="echo", raw_input_contents=[b"\x00" * 1000])
            req.inputs.add(name="a", datatype="UINT8", shape=[1000])
            assert stub.ModelInfer(req).raw_output_contents[0] == b"\x00" * 1000
    finally:
        server.stop()
