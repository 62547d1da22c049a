"""Benchmark floors for gRPC: a bare grpc.aio server on uvloop with no framework.

  predict — np.frombuffer the raw input, model.predict, reply with raw contents
  fixed   — reply with a prebuilt response without reading the model
Usage: python floor_grpc.py MODE PORT [MODEL_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import numpy as np
import uvloop

from modelplane.grpcproto import inference_pb2 as pb
from modelplane.grpcproto import inference_pb2_grpc as pb_grpc


def main(mode: str, port: int, model_dir: str | None) -> None:
    model = None
    if mode == "predict":
        import joblib

        model = joblib.load(next(Path(model_dir).glob("*.joblib")))
    fixed = pb.ModelInferResponse(model_name="m", id="1", raw_output_contents=[np.ones(2, "<i8").tobytes()])
    fixed.outputs.add(name="output-0", datatype="INT64", shape=[2])

    class Servicer(pb_grpc.GRPCInferenceServiceServicer):
        async def ModelInfer(self, request, context):
            if model is None:
                return fixed
            inp = request.inputs[0]
            y = model.predict(np.frombuffer(request.raw_input_contents[0], dtype="<f4").reshape(list(inp.shape)))
            res = pb.ModelInferResponse(
                model_name=request.model_name,
                id=request.id,
                raw_output_contents=[np.ascontiguousarray(y, "<i8").tobytes()],
            )
            res.outputs.add(name="output-0", datatype="INT64", shape=list(y.shape))
            return res

        async def ServerReady(self, request, context):
            return pb.ServerReadyResponse(ready=True)

    async def serve() -> None:
        server = grpc.aio.server()
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    uvloop.run(serve())


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
