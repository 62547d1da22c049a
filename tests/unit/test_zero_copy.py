"""Binary tensors are not copied: inputs are views of the request body, outputs views of the model's arrays."""

from __future__ import annotations

import numpy as np
import orjson

from modelplane.protocol.codecs import v2
from modelplane.protocol.types import InferResponse, Tensor


def test_binary_inputs_are_views_of_the_body():
    data = np.arange(1024, dtype="<f4")
    head = orjson.dumps(
        {
            "inputs": [
                {"name": "a", "shape": [32, 32], "datatype": "FP32", "parameters": {"binary_data_size": data.nbytes}}
            ]
        }
    )
    body = head + data.tobytes()
    request = v2.decode_request(body, len(head), "m")
    arr = request.inputs[0].data
    assert arr.shape == (32, 32) and not arr.flags.owndata
    assert np.shares_memory(arr, np.frombuffer(body, dtype=np.uint8))


def test_binary_outputs_are_views_of_the_arrays():
    out = np.arange(4096, dtype="<f8").reshape(64, 64)
    parts, ihcl = v2.encode_response(InferResponse("m", [Tensor.from_numpy("o", out)], id="i"), [True])
    assert ihcl == len(parts[0])
    blob = parts[1]
    assert isinstance(blob, memoryview) and len(blob) == out.nbytes
    assert np.shares_memory(np.frombuffer(blob, dtype="<f8"), out)
