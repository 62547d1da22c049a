"""Test support: drive a running server with the kserve SDK clients and print what they saw as JSON.

Run in its own process: the kserve package and tritonclient.grpc register the same protobuf symbols and
cannot be imported together. Usage: python -m support.kserve_clients HTTP_BASE GRPC_HOSTPORT MODEL
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import numpy as np
import orjson
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput

IRIS = np.array([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]], dtype=np.float32)


def _request(model: str, binary_in: bool, binary_out: bool) -> InferRequest:
    inp = InferInput("input-0", list(IRIS.shape), "FP32")
    inp.set_data_from_numpy(IRIS, binary_data=binary_in)
    outputs = [RequestedOutput("output-0", {"binary_data": binary_out})]
    return InferRequest(model, [inp], request_id="sdk-1", request_outputs=outputs)


async def run(http: str, grpc_url: str, model: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    v1 = InferenceRESTClient(RESTConfig(protocol="v1", retries=0))
    seen["v1_live"] = await v1.is_server_live(http)
    seen["v1_model_ready"] = await v1.is_model_ready(http, model)
    seen["v1_predict"] = await v1.infer(http, {"instances": IRIS.tolist()}, model_name=model)
    await v1.close()

    v2 = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
    seen["v2_live"] = await v2.is_server_live(http)
    seen["v2_ready"] = await v2.is_server_ready(http)
    seen["v2_model_ready"] = await v2.is_model_ready(http, model)
    for binary_in in (False, True):
        for binary_out in (False, True):
            res = await v2.infer(http, _request(model, binary_in, binary_out), model_name=model)
            seen[f"v2_infer_{binary_in}_{binary_out}"] = {
                "id": res.id,
                "data": res.outputs[0].as_numpy().tolist(),
                "name": res.outputs[0].name,
            }
    await v2.close()

    g = InferenceGRPCClient(grpc_url)
    seen["grpc_live"] = await g.is_server_live()
    seen["grpc_ready"] = await g.is_server_ready()
    seen["grpc_model_ready"] = await g.is_model_ready(model)
    res = await g.infer(_request(model, True, True))
    seen["grpc_infer"] = {"id": res.id, "data": res.outputs[0].as_numpy().tolist()}
    typed = InferRequest(
        model, [InferInput("input-0", list(IRIS.shape), "FP32", IRIS.reshape(-1).tolist())], request_id="typed"
    )
    res = await g.infer(typed)
    seen["grpc_infer_typed"] = {"id": res.id, "data": res.outputs[0].as_numpy().tolist()}
    await g.close()
    return seen


if __name__ == "__main__":
    print(orjson.dumps(asyncio.run(run(sys.argv[1], sys.argv[2], sys.argv[3]))).decode())
