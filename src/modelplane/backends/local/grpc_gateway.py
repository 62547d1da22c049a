"""Local backend: the gateway's gRPC side — every Open Inference Protocol RPC, routed like the HTTP side and
forwarded as opaque bytes to a ready replica's gRPC port.

The InferenceService is named by the `x-modelplane-route` metadata (`/serving/{namespace}/{name}[-component]`) or a
`host` metadata entry (`{name}.{namespace}.{domain}`, as clients set for an ingress).
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from modelplane.backends.local.activator import Gone, QueueFull
from modelplane.backends.local.gateway import DEFAULT_TIMEOUT_S, REPOSITORY_ANNOTATION, Gateway

FORWARD_SKIP = {"x-modelplane-route", "host", "user-agent"}
REPOSITORY_MUTATIONS = {
    "/inference.GRPCInferenceService/RepositoryModelLoad",
    "/inference.GRPCInferenceService/RepositoryModelUnload",
}


def message_options(max_bytes: int) -> list[tuple[str, int]]:
    """The same message limit as the HTTP side's body limit, in both directions."""
    return [
        ("grpc.max_send_message_length", max_bytes),
        ("grpc.max_receive_message_length", max_bytes),
        ("grpc.max_connection_idle_ms", 300_000),  # idle clients do not hold descriptors forever
    ]


class GrpcGateway(grpc.GenericRpcHandler):
    """Shares the HTTP side's routes and revision pools, so containerConcurrency, the queue and the activator
    apply to both protocols together."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._channels: dict[str, grpc.aio.Channel] = {}

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
                revision = self.gateway.pick(route, component, tag)
            except LookupError as exc:
                await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            except ConnectionError as exc:
                await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            if method in REPOSITORY_MUTATIONS and not route.repository_api:
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"repository load/unload is not exposed; set {REPOSITORY_ANNOTATION}",
                )
            pool = self.gateway.pool(revision, route)
            remaining = context.time_remaining()
            timeout = min(route.timeouts.get(component, DEFAULT_TIMEOUT_S), remaining or DEFAULT_TIMEOUT_S)
            forwarded = [(k, v) for k, v in metadata.items() if k not in FORWARD_SKIP and not k.startswith(":")]
            pool.meter.begin()
            try:
                async with asyncio.timeout(timeout):
                    endpoint = await pool.acquire()
                if endpoint is None:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, f"no ready replica of {revision}")
                try:
                    return await self._channel(endpoint.grpc).unary_unary(method)(
                        request, metadata=forwarded, timeout=context.time_remaining() or timeout
                    )
                finally:
                    pool.release(endpoint)
            except TimeoutError:
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"no ready replica of {revision} in time")
            except QueueFull as exc:
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"too many requests waiting: {exc}")
            except Gone as exc:
                await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")
            finally:
                pool.meter.end()
            raise AssertionError("unreachable")  # abort raises

        return grpc.unary_unary_rpc_method_handler(forward)

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
