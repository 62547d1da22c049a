"""Local backend: the gateway's gRPC side — every Open Inference Protocol RPC, routed like the HTTP side and
forwarded as opaque bytes to a ready replica's gRPC port.

The InferenceService is named by the `x-modelplane-route` metadata (`/serving/{namespace}/{name}[-component]`) or a
`host` metadata entry (`{name}.{namespace}.{domain}`, as clients set for an ingress).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import grpc

from modelplane.backends.local.gateway import Gateway

FORWARD_SKIP = {"x-modelplane-route", "host", "user-agent"}


class GrpcGateway(grpc.GenericRpcHandler):
    def __init__(self, gateway: Gateway, grpc_targets: Callable[[str], list[str]]) -> None:
        self.gateway = gateway
        self.grpc_targets = grpc_targets  # revision -> ready replicas' host:port
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._rr = itertools.count()

    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if not method.startswith("/inference.GRPCInferenceService/"):
            return None
        metadata = dict(handler_call_details.invocation_metadata or ())

        async def forward(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            route_path = metadata.get("x-modelplane-route")
            try:
                if route_path:
                    route, component, tag, _ = self.gateway.resolve("", route_path.rstrip("/") + "/")
                else:
                    route, component, tag, _ = self.gateway.resolve(metadata.get("host", ""), "/")
                component = self.gateway.component_for(route, component, "")
                revision, _ = self.gateway.pick(route, component, tag)
            except LookupError as exc:
                await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            except ConnectionError as exc:
                await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            targets = self.grpc_targets(revision)
            if not targets:
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"no ready replica of {revision}")
            target = targets[next(self._rr) % len(targets)]
            channel = self._channels.get(target)
            if channel is None:
                channel = self._channels[target] = grpc.aio.insecure_channel(target)
            forwarded = [(k, v) for k, v in metadata.items() if k not in FORWARD_SKIP and not k.startswith(":")]
            try:
                return await channel.unary_unary(method)(request, metadata=forwarded, timeout=context.time_remaining())
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")
            raise AssertionError("unreachable")  # abort raises

        return grpc.unary_unary_rpc_method_handler(forward)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
