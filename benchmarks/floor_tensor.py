"""Benchmark floor for tensor models: the runtime's own session call behind bare uvicorn ASGI (V2 binary
extension) or a bare grpc.aio server (raw contents) — no framework, no checks.

Usage: python floor_tensor.py rest|rest-h1|grpc|grpc-h2 PORT MODEL_FILE   (.onnx: ONNX Runtime, one thread; .pt:
TorchScript)

`rest-h1` serves the same bare app on modelplane's own HTTP/1.1 server instead of uvicorn, and `grpc-h2` the same bare
method on modelplane's own HTTP/2 instead of grpc.aio: floors with the same transport as modelplane, so what is left
between the two is the framework's work per request.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson


def runner(path: str) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """The input's name and the bare call of the model on one array."""
    if path.endswith(".onnx"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return name, lambda x: session.run(None, {name: x})[0]
    import torch

    torch.set_num_threads(1)
    module = torch.jit.load(path).eval()

    def call(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return "input-0", call


def bare_app(call: Callable[[np.ndarray], np.ndarray]) -> Callable[..., Any]:
    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        chunks, more = [], True
        while more:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        body = b"".join(chunks)
        if scope["method"] == "GET":  # readiness
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        n = int(dict(scope["headers"])[b"inference-header-content-length"])
        head = orjson.loads(body[:n])
        inp = head["inputs"][0]
        y = call(np.frombuffer(body[n:], dtype="<f4").reshape(inp["shape"]))
        raw = np.ascontiguousarray(y, "<f4").tobytes()
        out = orjson.dumps(
            {
                "model_name": "m",
                "outputs": [
                    {
                        "name": "output-0",
                        "datatype": "FP32",
                        "shape": list(y.shape),
                        "parameters": {"binary_data_size": len(raw)},
                    }
                ],
            }
        )
        headers = [
            (b"content-type", b"application/octet-stream"),
            (b"inference-header-content-length", str(len(out)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": out + raw})

    return app


def rest(port: int, call: Callable[[np.ndarray], np.ndarray]) -> None:
    import uvicorn

    uvicorn.run(
        bare_app(call),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


def rest_h1(port: int, call: Callable[[np.ndarray], np.ndarray]) -> None:
    import asyncio

    import uvloop

    from modelplane.server.rest.limits import ConnectionLimits
    from modelplane.server.rest.listener import HttpServer

    async def serve() -> None:
        server = HttpServer(bare_app(call), ConnectionLimits())
        await server.start("127.0.0.1", port)
        await asyncio.Event().wait()

    uvloop.run(serve())


def bare_infer(call: Callable[[np.ndarray], np.ndarray]) -> Callable[..., Any]:
    """ModelInfer with nothing but the model call: raw contents in, raw contents out."""
    from modelplane.grpcproto import inference_pb2 as pb

    async def infer(request, context):
        inp = request.inputs[0]
        y = call(np.frombuffer(request.raw_input_contents[0], dtype="<f4").reshape(list(inp.shape)))
        res = pb.ModelInferResponse(
            model_name=request.model_name,
            id=request.id,
            raw_output_contents=[np.ascontiguousarray(y, "<f4").tobytes()],
        )
        res.outputs.add(name="output-0", datatype="FP32", shape=list(y.shape))
        return res

    return infer


def grpc_server(port: int, call: Callable[[np.ndarray], np.ndarray]) -> None:
    import grpc
    import uvloop

    from modelplane.grpcproto import inference_pb2_grpc as pb_grpc

    class Servicer(pb_grpc.GRPCInferenceServiceServicer):
        ModelInfer = staticmethod(bare_infer(call))

    async def serve() -> None:
        server = grpc.aio.server()
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    uvloop.run(serve())


def grpc_h2(port: int, call: Callable[[np.ndarray], np.ndarray]) -> None:
    import asyncio

    import uvloop

    from modelplane.grpcproto import inference_pb2 as pb
    from modelplane.server.grpc.h2server import GrpcH2Server

    async def serve() -> None:
        table = {"ModelInfer": (bare_infer(call), pb.ModelInferRequest.FromString)}
        server = GrpcH2Server(table, 64 << 20, 64 << 20)
        await server.start("127.0.0.1", port)
        await asyncio.Event().wait()

    uvloop.run(serve())


if __name__ == "__main__":
    _, call = runner(sys.argv[3])
    {"rest": rest, "rest-h1": rest_h1, "grpc": grpc_server, "grpc-h2": grpc_h2}[sys.argv[1]](int(sys.argv[2]), call)
