"""Server gRPC transport: hand-written protobuf encoding of ModelInferResponse for raw-contents replies.

Building a protobuf object field by field costs more than the whole model call for small tensors; writing the
wire format directly is a few microseconds. Only the common shape is written here (no parameters, raw
contents); anything else goes through the generated classes. A property test checks both agree.
"""

from __future__ import annotations

from modelplane.protocol.codecs.raw import tensor_to_raw
from modelplane.protocol.types import InferResponse


def varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 fields: two's complement in ten bytes
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field: its one-byte key (`tag`), the length, the bytes."""
    return bytes((tag,)) + varint(len(payload)) + payload


def can_encode(response: InferResponse) -> bool:
    return not response.parameters and not any(t.parameters for t in response.outputs)


def encode_raw_response(response: InferResponse) -> bytes:
    """Serialized ModelInferResponse with every output in raw_output_contents (see can_encode)."""
    parts = [field(0x0A, response.model_name.encode())]
    if response.model_version:
        parts.append(field(0x12, response.model_version.encode()))
    if response.id:
        parts.append(field(0x1A, response.id.encode()))
    blobs = []
    for tensor in response.outputs:
        body = field(0x0A, tensor.name.encode()) + field(0x12, tensor.datatype.encode())
        if tensor.shape:
            body += field(0x1A, b"".join(varint(int(d)) for d in tensor.shape))
        parts.append(field(0x2A, body))
        blobs.append(field(0x32, bytes(tensor_to_raw(tensor.data, tensor.datatype))))
    return b"".join(parts + blobs)
