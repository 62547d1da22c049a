"""Open Inference Protocol gRPC, client side: an InferRequest as a ModelInferRequest (raw contents), and a
ModelInferResponse (raw or typed contents) back as an InferResponse."""

from __future__ import annotations

from typing import Any

from modelplane.grpcproto import inference_pb2 as pb
from modelplane.grpcproto.contents import typed_contents
from modelplane.protocol.codecs.raw import tensor_from_raw, tensor_to_raw
from modelplane.protocol.datatypes import shape_size
from modelplane.protocol.types import InferRequest, InferResponse, Tensor


def encode_request(request: InferRequest, model_name: str) -> Any:
    msg = pb.ModelInferRequest(model_name=model_name, id=request.id or "")
    for t in request.inputs:
        msg.inputs.add(name=t.name, datatype=t.datatype, shape=list(t.shape))
        msg.raw_input_contents.append(bytes(tensor_to_raw(t.data, t.datatype)))
    for o in request.outputs or ():
        msg.outputs.add(name=o.name)
    return msg


def decode_response(msg: Any) -> InferResponse:
    outputs = []
    for i, o in enumerate(msg.outputs):
        shape = list(o.shape)
        where = f"output '{o.name}'"
        count = shape_size(shape, where)
        if i < len(msg.raw_output_contents):
            data = tensor_from_raw(msg.raw_output_contents[i], o.datatype, shape, count, where)
        else:
            data = typed_contents(o.contents, o.datatype, shape, count, where)
        outputs.append(Tensor(o.name, o.datatype, shape, data))
    return InferResponse(msg.model_name, outputs, msg.id or "", msg.model_version or None)
