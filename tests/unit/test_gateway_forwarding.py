"""The gateway's one forwarding core through both of its sides: the same failure gets the same answer over HTTP
(status) and gRPC (code) — no replica listening, a full queue, a timeout while held at zero, a revision deleted
while its requests wait, no such InferenceService. The gRPC side is served as the platform serves it (modelplane's
HTTP/2 server on loopback) and called with a grpc.aio client."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import grpc
import pytest
from support.asgi import call_async

from modelplane.backends.local.activator import Endpoint
from modelplane.backends.local.gateway import Gateway, Route
from modelplane.backends.local.grpc_gateway import GrpcGateway
from modelplane.server.grpc.h2server import GrpcH2Server

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


class Replicas:
    def __init__(self) -> None:
        self.up: dict[str, list[Endpoint]] = {}

    def ready(self, revision: str) -> list[Endpoint]:
        return list(self.up.get(revision, []))

    def starting(self, revision: str) -> list[tuple[Endpoint, str]]:
        return []

    def mark_ready(self, revision: str, endpoint: Endpoint) -> None:
        self.up.setdefault(revision, []).append(endpoint)


def setup(case: str, asked: list[tuple[str, int]]) -> Gateway:
    replicas = Replicas()
    g = Gateway(replicas, activate=lambda rev, held: asked.append((rev, held)), queue_depth=1)
    cold = Route(traffic={"predictor": [("r1", 100)]}, activatable=frozenset({"r1"}), timeouts={"predictor": 0.3})
    if case == "dead replica":
        port = closed_port()
        replicas.up["r1"] = [Endpoint(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}")]
        g.set_route("default", "iris", Route(traffic={"predictor": [("r1", 100)]}, timeouts={"predictor": 0.3}))
    elif case in ("held at zero until the timeout", "full queue", "revision deleted"):
        g.set_route("default", "iris", cold)
    return g


async def over_http(g: Gateway) -> tuple[int, str]:
    status, _, body = await call_async(g, "POST", "/serving/default/iris/v2/models/iris/infer", body=b"{}")
    return status, body.decode()


async def over_grpc(g: Gateway) -> tuple[int, str]:
    server = GrpcH2Server(GrpcGateway(g).methods(), 1 << 20, 1 << 20)
    await server.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.ports[0]}") as channel:
            rpc = channel.unary_unary(MODEL_INFER)
            try:
                await rpc(b"", metadata=[("x-modelplane-route", "/serving/default/iris")], timeout=10)
            except grpc.aio.AioRpcError as exc:
                return exc.code().value[0], exc.details() or ""
            return 0, ""
    finally:
        await server.stop(0)


CASES: dict[str, tuple[int, grpc.StatusCode, str]] = {
    "dead replica": (504, grpc.StatusCode.DEADLINE_EXCEEDED, "did not answer within its 0.3s timeout"),
    "held at zero until the timeout": (504, grpc.StatusCode.DEADLINE_EXCEEDED, "had no ready replica"),
    "full queue": (503, grpc.StatusCode.UNAVAILABLE, "too many requests waiting"),
    "revision deleted": (503, grpc.StatusCode.UNAVAILABLE, "was removed"),
    "no such isvc": (404, grpc.StatusCode.NOT_FOUND, "InferenceService default/iris not found"),
}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("case", list(CASES))
def test_one_failure_one_answer_on_both_protocols(case: str, protocol: str) -> None:
    http_status, grpc_code, message = CASES[case]
    asked: list[tuple[str, int]] = []
    g = setup(case, asked)
    send = over_http if protocol == "http" else over_grpc

    async def main() -> tuple[int, str]:
        if case == "full queue":  # one request is held (queue depth 1); the next finds the queue full
            first = asyncio.create_task(send(g))
            await asyncio.sleep(0.1)
            answer = await send(g)
            await first
            return answer
        if case == "revision deleted":
            waiting = asyncio.create_task(send(g))
            await asyncio.sleep(0.1)
            g.forget("r1")  # what the backend does when the revision is retired
            return await waiting
        return await send(g)

    got: Any = asyncio.run(main())
    want = http_status if protocol == "http" else grpc_code.value[0]
    assert got[0] == want and message in got[1], got
    if case.startswith("held") or case == "revision deleted":
        assert asked and asked[0] == ("r1", 1)  # the request asked for a scale-from-zero while held
