"""REST and gRPC report each domain error with the status STATUS_TABLE gives it (one table, two transports)."""

from __future__ import annotations

import grpc
import httpx
import pytest

from modelplane.grpcproto import inference_pb2 as pb
from modelplane.grpcproto import inference_pb2_grpc as pb_grpc
from modelplane.protocol import errors
from modelplane.server.grpc.servicer import grpc_code


def test_every_table_entry_names_a_real_grpc_code():
    for cls, status in errors.STATUS_TABLE.items():
        assert grpc_code(cls("x") if cls is not errors.ModelNotFound else cls("m")) == grpc.StatusCode[status.grpc]
        assert 400 <= status.http < 600


def test_unknown_exceptions_are_internal():
    assert errors.status_of(ValueError("x")) == errors.Status(500, "INTERNAL")


def _infer_pb(model: str, datatype: str = "INT32") -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name=model)
    inp = req.inputs.add(name="a", datatype=datatype, shape=[1])
    if datatype == "INT32":
        inp.contents.int_contents.append(1)
    return req


# (error class, REST request, gRPC request) producing that error on both transports
SCENARIOS = [
    (
        errors.ModelNotFound,
        ("nope", {"inputs": [{"name": "a", "shape": [1], "datatype": "INT32", "data": [1]}]}),
        _infer_pb("nope"),
    ),
    (
        errors.InvalidInput,
        ("echo", {"inputs": [{"name": "a", "shape": [1], "datatype": "NOPE", "data": [1]}]}),
        _infer_pb("echo", "NOPE"),
    ),
    (
        errors.ModelNotReady,
        ("broken", {"inputs": [{"name": "a", "shape": [1], "datatype": "INT32", "data": [1]}]}),
        _infer_pb("broken"),
    ),
    (
        errors.InferenceError,
        ("failing", {"inputs": [{"name": "a", "shape": [1], "datatype": "INT32", "data": [1]}]}),
        _infer_pb("failing"),
    ),
]


@pytest.mark.parametrize("cls,rest,grpc_req", SCENARIOS, ids=[s[0].__name__ for s in SCENARIOS])
def test_rest_and_grpc_agree_with_the_table(test_models_server, cls, rest, grpc_req):
    expected = errors.STATUS_TABLE[cls]
    model, body = rest
    r = httpx.post(f"{test_models_server.http}/v2/models/{model}/infer", json=body)
    with grpc.insecure_channel(test_models_server.grpc) as channel, pytest.raises(grpc.RpcError) as info:
        pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(grpc_req)
    assert (r.status_code, info.value.code().name) == (expected.http, expected.grpc)
    assert r.json()["error"]
