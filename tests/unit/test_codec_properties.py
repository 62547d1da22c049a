"""Property tests: every codec round-trips every datatype (V2 JSON, V2 binary, gRPC typed, gRPC raw)."""

from __future__ import annotations

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelplane.grpcproto import inference_pb2 as pb
from modelplane.protocol.codecs import v2
from modelplane.protocol.datatypes import BINARY_ONLY, float32_to_bf16, wire_dtype
from modelplane.protocol.types import InferRequest, InferResponse, RequestedOutput, Tensor
from modelplane.server.grpc import codec as grpc_codec

NUMERIC = [
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BF16",
]
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4)


@st.composite
def tensors(draw, datatypes=(*NUMERIC, "BYTES"), text_only: bool = False) -> Tensor:
    datatype = draw(st.sampled_from(datatypes))
    shape = draw(shapes)
    if datatype == "BYTES":
        elem = st.text(max_size=8) if text_only else st.one_of(st.binary(max_size=8), st.text(max_size=8))
        items = draw(st.lists(elem, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        data = np.empty(len(items), dtype=object)
        data[:] = items
        data = data.reshape(shape)
    elif datatype == "BF16":  # exactly representable: float32 values with the low 16 bits clear
        words = draw(hnp.arrays(np.dtype("<u2"), shape))
        data = (words.astype("<u4") << 16).view("<f4")
        data = np.where(np.isfinite(data), data, 0).astype("<f4")
    else:
        dtype = wire_dtype(datatype)
        data = draw(hnp.arrays(dtype, shape, elements=hnp.from_dtype(dtype, allow_nan=False, allow_infinity=False)))
    name = draw(st.text(min_size=1, max_size=6))
    return Tensor(name, datatype, list(shape), data)


def _same(a: Tensor, b: Tensor) -> None:
    assert (a.name, a.datatype, list(a.shape)) == (b.name, b.datatype, list(b.shape))
    if a.datatype == "BYTES":
        norm = [x.encode() if isinstance(x, str) else bytes(x) for x in np.asarray(a.data).reshape(-1)]
        got = [x.encode() if isinstance(x, str) else bytes(x) for x in np.asarray(b.data).reshape(-1)]
        assert norm == got
    else:
        assert np.array_equal(np.asarray(a.data), np.asarray(b.data))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(tensors((*(d for d in NUMERIC if d not in BINARY_ONLY), "BYTES"), text_only=True), min_size=1, max_size=3)
)
def test_v2_json_round_trip(inputs):
    response = InferResponse("m", inputs, id="x")
    parts, ihcl = v2.encode_response(response, [False] * len(inputs))
    assert ihcl is None
    doc = orjson.loads(parts[0])
    body = orjson.dumps({"inputs": doc["outputs"]})
    decoded = v2.decode_request(body, None, "m")
    for a, b in zip(inputs, decoded.inputs, strict=True):
        _same(a, b)


@settings(max_examples=150, deadline=None)
@given(st.lists(tensors(), min_size=1, max_size=3), st.data())
def test_v2_binary_round_trip(inputs, data):
    binary = [data.draw(st.booleans()) or t.datatype in BINARY_ONLY for t in inputs]
    if any(t.datatype == "BYTES" and not b for t, b in zip(inputs, binary, strict=True)):
        binary = [True] * len(inputs)  # non-UTF-8 BYTES can only travel binary
    parts, ihcl = v2.encode_response(InferResponse("m", inputs, id="x"), binary)
    body = b"".join(bytes(p) for p in parts)
    header = orjson.loads(body[:ihcl] if ihcl is not None else body)
    request_header = orjson.dumps({"inputs": header["outputs"]})
    decoded = v2.decode_request(request_header + body[ihcl or len(body) :], len(request_header) if ihcl else None, "m")
    for a, b in zip(inputs, decoded.inputs, strict=True):
        _same(a, b)


def _as_request_pb(response_pb: pb.ModelInferResponse) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name="m", raw_input_contents=list(response_pb.raw_output_contents))
    for out in response_pb.outputs:
        inp = req.inputs.add(name=out.name, datatype=out.datatype, shape=list(out.shape))
        if out.HasField("contents"):
            inp.contents.CopyFrom(out.contents)
        for k, v in out.parameters.items():
            inp.parameters[k].CopyFrom(v)
    return req


@settings(max_examples=150, deadline=None)
@given(st.lists(tensors(), min_size=1, max_size=3), st.booleans())
def test_grpc_round_trip_raw_and_typed(inputs, raw):
    msg = grpc_codec.encode_response(InferResponse("m", inputs, id="x"), raw=raw)
    wire = pb.ModelInferResponse.FromString(msg if isinstance(msg, bytes) else msg.SerializeToString())
    decoded = grpc_codec.decode_request(_as_request_pb(wire))
    for a, b in zip(inputs, decoded.inputs, strict=True):
        _same(a, b)


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.one_of(st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=5), st.floats(allow_nan=False)),
        max_size=5,
    )
)
def test_grpc_parameters_round_trip(params):
    msg = pb.ModelInferResponse()
    grpc_codec.params_to_pb(msg.parameters, params)
    assert grpc_codec.params_from_pb(pb.ModelInferResponse.FromString(msg.SerializeToString()).parameters) == (
        params or None
    )


def test_bf16_is_truncated_float32():
    values = np.array([1.0, -2.5, 3.14159], dtype=np.float32)
    words = float32_to_bf16(values)
    assert words.tolist() == [0x3F80, 0xC020, 0x4049]


def test_binary_outputs_precedence():
    req = InferRequest(
        "m",
        [],
        parameters={"binary_data_output": True},
        outputs=[RequestedOutput("a", {"binary_data": False}), RequestedOutput("b")],
    )
    resp = InferResponse("m", [Tensor.from_numpy(n, [1]) for n in ("a", "b", "c")])
    assert v2.binary_outputs(req, resp) == [False, True, True]
    assert v2.binary_outputs(InferRequest("m", []), resp) == [False, False, False]


@settings(max_examples=150, deadline=None)
@given(st.lists(tensors(), min_size=1, max_size=3), st.text(max_size=8), st.text(max_size=40))
def test_hand_written_raw_response_matches_protobuf(outputs, version, rid):
    from modelplane.server.grpc import wire

    response = InferResponse("model-é", outputs, id=rid, model_version=version or None)
    ours = pb.ModelInferResponse.FromString(wire.encode_raw_response(response))
    msg = pb.ModelInferResponse(model_name="model-é", model_version=version, id=rid)
    for t in outputs:
        msg.outputs.add(name=t.name, datatype=t.datatype, shape=t.shape)
        msg.raw_output_contents.append(bytes(grpc_codec.tensor_to_raw(t.data, t.datatype)))
    assert ours == msg


def test_negative_shape_dims_encode_as_int64():
    from modelplane.server.grpc import wire

    t = Tensor("x", "INT32", [-1, 3], np.zeros(3, dtype=np.int32))
    parsed = pb.ModelInferResponse.FromString(wire.encode_raw_response(InferResponse("m", [t], id="i")))
    assert list(parsed.outputs[0].shape) == [-1, 3]
