"""Requests that claim more than they carry: element counts are checked against the bytes actually present before
anything is allocated, shapes are bounded, and numpy's own refusals are the client's error (400 / INVALID_ARGUMENT)."""

from __future__ import annotations

import tracemalloc

import orjson
import pytest

from modelplane.grpcproto import inference_pb2 as pb
from modelplane.protocol.codecs import v2
from modelplane.protocol.errors import InvalidInput
from modelplane.server.grpc import codec as grpc_codec


def _binary(shape: list[int], datatype: str, blob: bytes) -> tuple[bytes, int]:
    header = orjson.dumps(
        {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": len(blob)}}]}
    )
    return header + blob, len(header)


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput):
            fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_bytes_shape_without_the_bytes_allocates_nothing_rest():
    """The report: 113 bytes with BYTES shape [2**27] allocated 1 GiB before failing."""
    body, ihcl = _binary([2**27], "BYTES", b"\0\0\0\0")
    assert len(body) < 200
    assert _peak(lambda: v2.decode_request(body, ihcl, "m")) < 2**20


def test_bytes_shape_without_the_bytes_allocates_nothing_grpc():
    msg = pb.ModelInferRequest(model_name="m")
    msg.inputs.add(name="x", datatype="BYTES", shape=[2**27])
    msg.raw_input_contents.append(b"\0\0\0\0")
    assert _peak(lambda: grpc_codec.decode_request(msg)) < 2**20


@pytest.mark.parametrize(
    "shape",
    [
        [2**62, 2**62],  # the product overflows any int64
        [0, 2**62],  # zero elements, but numpy cannot build the dimension
        [1] * 40,  # more dimensions than numpy has
        [2**33],
    ],
)
def test_absurd_shapes_are_invalid_input_on_every_codec(shape):
    body = orjson.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": "FP32", "data": []}]})
    with pytest.raises(InvalidInput):
        v2.decode_request(body, None, "m")
    binary, ihcl = _binary(shape, "FP32", b"")
    with pytest.raises(InvalidInput):
        v2.decode_request(binary, ihcl, "m")
    msg = pb.ModelInferRequest(model_name="m")
    msg.inputs.add(name="x", datatype="FP32", shape=shape)
    with pytest.raises(InvalidInput):
        grpc_codec.decode_request(msg)
    raw = pb.ModelInferRequest(model_name="m")
    raw.inputs.add(name="x", datatype="FP32", shape=shape)
    raw.raw_input_contents.append(b"")
    with pytest.raises(InvalidInput):
        grpc_codec.decode_request(raw)


def _nested(datatype: str, leaf: str, depth: int = 1000) -> bytes:
    """`depth` is below orjson's own nesting limit and above Python's recursion limit for a recursive walk."""
    data = "[" * depth + leaf + "]" * depth
    return b'{"inputs": [{"name": "x", "shape": [1], "datatype": "%s", "data": %s}]}' % (
        datatype.encode(),
        data.encode(),
    )


def test_deeply_nested_data_never_recurses():
    assert v2.decode_request(_nested("BYTES", '"a"'), None, "m").inputs[0].data.tolist() == ["a"]
    with pytest.raises(InvalidInput):
        v2.decode_request(_nested("FP32", "1"), None, "m")  # numpy has at most 64 dimensions
    with pytest.raises(InvalidInput):
        v2.decode_request(_nested("BYTES", "1"), None, "m")


def test_nested_bytes_data_still_flattens():
    body = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "BYTES", "data": [["a", "b"], ["c", ["d"]]]}]}
    )
    request = v2.decode_request(body, None, "m")
    assert request.inputs[0].data.tolist() == [["a", "b"], ["c", "d"]]
