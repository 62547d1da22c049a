"""Local backend: the gateway's gRPC side — every Open Inference Protocol RPC, routed like the HTTP side and
forwarded as opaque bytes to a ready replica's gRPC port. It is served by modelplane's own HTTP/2 server
(server/grpc/h2server.py, as the model server's gRPC is) and forwards over grpc.aio channels.

The InferenceService is named by the `x-modelplane-route` metadata (`/serving/{namespace}/{name}[-component]`) or a
`host` metadata entry (`{name}.{namespace}.{domain}`, as clients set for an ingress).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from modelplane.backends.local.activator import Endpoint
from modelplane.backends.local.forward import forward
from modelplane.backends.local.gateway import Gateway
from modelplane.protocol.errors import ModelplaneError
from modelplane.server.grpc.h2server import Context
from modelplane.server.grpc.servicer import SERVICE, Method, descriptor
from modelplane.server.grpc.wire import field

FORWARD_SKIP = {"x-modelplane-route", "host", "user-agent"}
BY_MODEL = {  # the RPCs whose request message names its model in field 1 (model_name / name)
    "/inference.GRPCInferenceService/ModelInfer",
    "/inference.GRPCInferenceService/ModelMetadata",
    "/inference.GRPCInferenceService/ModelReady",
}
REPOSITORY_MUTATIONS = {
    "/inference.GRPCInferenceService/RepositoryModelLoad",
    "/inference.GRPCInferenceService/RepositoryModelUnload",
}


def message_options(max_bytes: int) -> list[tuple[str, int]]:
    """The same message limit as the HTTP side's body limit, in both directions (the channels to replicas)."""
    return [
        ("grpc.max_send_message_length", max_bytes),
        ("grpc.max_receive_message_length", max_bytes),
    ]


def _unparsed(message: bytes) -> bytes:
    return message


class GrpcGateway:
    """Shares the HTTP side's routes and revision pools, so containerConcurrency, the queue and the activator
    apply to both protocols together."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._channels: dict[str, grpc.aio.Channel] = {}

    def methods(self) -> dict[str, Method]:
        """The h2 server's method table: every method of the service, its request left as bytes."""
        return {m.name: (self._handler(f"/{SERVICE}/{m.name}"), _unparsed) for m in descriptor().methods}

    def _handler(self, method: str) -> Callable[[bytes, Context], Awaitable[bytes]]:
        async def handle(request: bytes, context: Context) -> bytes:
            metadata = dict(context.invocation_metadata())
            try:
                return await self._forward(method, metadata, request, context)
            except ModelplaneError as exc:
                code = grpc.StatusCode[exc.status.grpc]
                await context.abort(code, exc.message, trailing_metadata=tuple(exc.headers.items()))
            except grpc.aio.AioRpcError as exc:  # the replica's own answer
                await context.abort(exc.code(), exc.details() or "")
            raise AssertionError("unreachable")  # abort raises

        return handle

    async def _forward(self, method: str, metadata: dict[str, Any], request: bytes, context: Context) -> bytes:
        route_path = metadata.get("x-modelplane-route")
        host, path = ("", route_path.rstrip("/") + "/") if route_path else (metadata.get("host", ""), "/")
        mutation = _mutation if method in REPOSITORY_MUTATIONS else _read
        route, component, revision, _ = self.gateway.select(host, path, mutation)
        timeout = self.gateway.timeout(route, component)
        remaining = context.time_remaining()
        if remaining is not None:
            timeout = min(timeout, remaining)
        forwarded = [(k, v) for k, v in metadata.items() if k not in FORWARD_SKIP and not k.startswith(":")]

        pool = self.gateway.pool(revision, route)
        model = model_field(request) if (route.model_routing or route.aliases) and method in BY_MODEL else None
        if model is not None and model in route.aliases:  # a vmodel: the request goes to its concrete model
            model = route.aliases[model]
            request = with_model_field(request, model)
        if not route.model_routing:
            model = None

        async def call(endpoint: Endpoint) -> bytes:
            rpc = self._channel(endpoint.grpc).unary_unary(method)
            try:
                return await rpc(request, metadata=forwarded)  # type: ignore[no-any-return]
            except grpc.aio.AioRpcError as exc:
                if model is not None and pool.placement is not None and _load_failed(exc):
                    pool.placement.failed(model, endpoint.http, exc.details() or "")  # the retry goes elsewhere
                raise

        return await forward(pool, timeout, component, call, _no_answer, _grpc_address, model=model)

    def _channel(self, target: str) -> grpc.aio.Channel:
        channel = self._channels.get(target)
        if channel is None:
            channel = self._channels[target] = grpc.aio.insecure_channel(
                target, options=message_options(self.gateway.max_body)
            )
        return channel

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()


def _no_answer(exc: Exception) -> bool:
    """The replica did not answer (gone, reset, refused); its own UNAVAILABLE answers are told apart by forward()
    from whether it still accepts connections."""
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.UNAVAILABLE


def _load_failed(exc: grpc.aio.AioRpcError) -> bool:
    trailing = exc.trailing_metadata() or ()
    return exc.code() == grpc.StatusCode.UNAVAILABLE and ("x-model-cache", "failed") in tuple(trailing)


def model_field(message: bytes) -> str | None:
    """Field 1 (a string) of a serialized protobuf message, read without decoding the rest: the model a
    ModelInfer / ModelMetadata / ModelReady request names. None if absent or malformed."""
    span = _field_one(message)
    if span is None:
        return None
    try:
        return message[span[1] : span[2]].decode("utf-8")
    except UnicodeDecodeError:
        return None


def with_model_field(message: bytes, name: str) -> bytes:
    """The message with field 1 set to `name`: the old field cut out, the new one first (protobuf takes fields in
    any order). The rest of the message is not decoded."""
    span = _field_one(message)
    rest = message if span is None else message[: span[0]] + message[span[2] :]
    return field(0x0A, name.encode()) + rest


def _field_one(message: bytes) -> tuple[int, int, int] | None:
    """(where field 1's key starts, where its value starts, where it ends), if it is a well-formed string field."""
    i, n = 0, len(message)
    try:
        while i < n:
            start = i
            key, i = _varint(message, i)
            number, wire = key >> 3, key & 7
            if wire == 0:
                _, i = _varint(message, i)
            elif wire == 1:
                i += 8
            elif wire == 5:
                i += 4
            elif wire == 2:
                size, i = _varint(message, i)
                if number == 1:
                    return (start, i, i + size) if i + size <= n else None
                i += size
            else:
                return None
    except IndexError:
        return None
    return None


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise IndexError("varint too long")


def _mutation(path: str) -> bool:
    return True


def _read(path: str) -> bool:
    return False


def _grpc_address(endpoint: Endpoint) -> str:
    return endpoint.grpc
