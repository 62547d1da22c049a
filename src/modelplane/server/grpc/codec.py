"""Server gRPC transport: protobuf ModelInfer messages ⇄ protocol types (typed and raw contents)."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelplane.grpcproto import inference_pb2 as pb
from modelplane.grpcproto.contents import CONTENTS_FIELD, typed_contents
from modelplane.protocol.codecs.raw import tensor_from_raw, tensor_to_raw
from modelplane.protocol.datatypes import BINARY_ONLY, check_datatype, shape_size
from modelplane.protocol.errors import InvalidInput
from modelplane.protocol.types import InferRequest, InferResponse, RequestedOutput, Tensor
from modelplane.server.grpc import wire


def params_from_pb(params: Any) -> dict[str, Any] | None:
    if not params:
        return None
    out = {}
    for key, value in params.items():
        which = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, which) if which else None
    return out


def params_to_pb(target: Any, params: dict[str, Any] | None) -> None:
    for key, value in (params or {}).items():
        slot = target[key]
        if isinstance(value, bool | np.bool_):
            slot.bool_param = bool(value)
        elif isinstance(value, int | np.integer):
            if int(value) >= 2**63:
                slot.uint64_param = int(value)
            else:
                slot.int64_param = int(value)
        elif isinstance(value, float | np.floating):
            slot.double_param = float(value)
        else:
            slot.string_param = str(value)


def decode_request(msg: Any) -> InferRequest:
    try:
        return _decode_request(msg)
    except MemoryError:
        raise InvalidInput("the request's tensors do not fit in memory") from None


def _decode_request(msg: Any) -> InferRequest:
    raw = msg.raw_input_contents
    if raw and len(raw) != len(msg.inputs):
        raise InvalidInput(
            f"the number of inputs ({len(msg.inputs)}) does not match the number of raw input contents ({len(raw)})"
        )
    inputs = []
    for i, item in enumerate(msg.inputs):
        where = f"input '{item.name}'"
        datatype = check_datatype(item.datatype, where)
        shape = list(item.shape)
        count = shape_size(shape, where)
        if raw:
            if item.HasField("contents"):
                raise InvalidInput(f"{where} sets contents although raw_input_contents are used")
            array = tensor_from_raw(raw[i], datatype, shape, count, where)
        else:
            array = typed_contents(item.contents, datatype, shape, count, where)
        inputs.append(Tensor(item.name, datatype, shape, array, params_from_pb(item.parameters)))
    if not inputs:
        raise InvalidInput("inference request must have at least one input")
    outputs = [RequestedOutput(o.name, params_from_pb(o.parameters)) for o in msg.outputs] or None
    return InferRequest(
        model_name=msg.model_name,
        inputs=inputs,
        id=msg.id or None,
        parameters=params_from_pb(msg.parameters),
        outputs=outputs,
        model_version=msg.model_version or None,
    )


def encode_response(response: InferResponse, raw: bool) -> Any:
    """Raw inputs → raw outputs; typed in → typed out unless an output has no typed field (FP16/BF16).

    Returns serialized bytes for the common raw case (wire.encode_raw_response), else a message object."""
    raw = raw or any(t.datatype in BINARY_ONLY for t in response.outputs)
    if raw and wire.can_encode(response):
        return wire.encode_raw_response(response)
    msg = pb.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version or "", id=response.id
    )
    params_to_pb(msg.parameters, response.parameters)
    for tensor in response.outputs:
        out = msg.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        params_to_pb(out.parameters, tensor.parameters)
        if raw:
            msg.raw_output_contents.append(bytes(tensor_to_raw(tensor.data, tensor.datatype)))
        elif tensor.datatype == "BYTES":
            out.contents.bytes_contents.extend(
                x.encode() if isinstance(x, str) else bytes(x) for x in tensor.data.reshape(-1)
            )
        else:
            getattr(out.contents, CONTENTS_FIELD[tensor.datatype]).extend(np.asarray(tensor.data).reshape(-1).tolist())
    return msg
