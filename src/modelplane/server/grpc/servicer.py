"""Server gRPC transport: GRPCInferenceService methods, each a thin adapter over the DataPlane, and the grpcio server
(`--grpc-server grpcio`); h2server.py serves the same methods on modelplane's own HTTP/2."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial, wraps
from typing import Any, TypeVar

import grpc

from modelplane.grpcproto import inference_pb2 as pb
from modelplane.grpcproto import inference_pb2_grpc as pb_grpc
from modelplane.protocol.errors import InvalidInput, ModelplaneError, status_of
from modelplane.server.dataplane import DataPlane
from modelplane.server.grpc import codec

log = logging.getLogger("modelplane.grpc")
SERVICE = "inference.GRPCInferenceService"
GRPC_PROTO = "application/grpc+proto"
IDLE_MS = 300_000
T = TypeVar("T")


def grpc_code(exc: BaseException) -> grpc.StatusCode:
    return grpc.StatusCode[status_of(exc).grpc]


def _mapped(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Turn domain errors into gRPC statuses from the one status table."""

    @wraps(method)
    async def wrapper(self: Servicer, request: Any, context: grpc.aio.ServicerContext) -> T:
        try:
            if isinstance(request, Undecodable):
                raise InvalidInput(request.error)
            return await method(self, request, context)
        except Exception as exc:
            if not isinstance(exc, ModelplaneError):
                log.exception("unhandled error in %s", method.__name__)
                message = f"{type(exc).__name__} : {exc}"
            else:
                message = exc.message
            self.dp.failed(getattr(request, "model_name", ""), "grpc", status_of(exc).grpc)
            await context.abort(grpc_code(exc), message, tuple((getattr(exc, "headers", None) or {}).items()))
            raise  # unreachable: abort raises

    return wrapper


class Servicer(pb_grpc.GRPCInferenceServiceServicer):
    """Decodes, calls the DataPlane, encodes; nothing else."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.dp = dataplane

    @_mapped
    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=self.dp.live())

    @_mapped
    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.dp.ready())

    @_mapped
    async def ModelReady(self, request: Any, context: Any) -> Any:
        return pb.ModelReadyResponse(ready=self.dp.model_ready(request.name, request.version or None))

    @_mapped
    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        meta = self.dp.metadata()
        return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"], extensions=meta["extensions"])

    @_mapped
    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        meta = await self.dp.model_metadata(request.name, request.version or None)
        tensors = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[tensors(**t) for t in meta["inputs"]],
            outputs=[tensors(**t) for t in meta["outputs"]],
        )

    @_mapped
    async def ModelInfer(self, request: Any, context: Any) -> Any:
        name = request.model_name
        entry = await self.dp.admit(name)
        infer_request = codec.decode_request(request)
        headers = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        event = self.dp.received(name, headers, request.SerializeToString, GRPC_PROTO)
        response, _ = await self.dp.infer(infer_request, headers, entry, deadline)
        msg = codec.encode_response(response, raw=bool(request.raw_input_contents))
        self.dp.answered(name, "grpc", "OK", event, headers, partial(serialize, msg), GRPC_PROTO)
        return msg

    @_mapped
    async def RepositoryIndex(self, request: Any, context: Any) -> Any:
        entries = self.dp.index(request.ready)
        return pb.RepositoryIndexResponse(models=[pb.RepositoryIndexResponse.ModelIndex(**e) for e in entries])

    @_mapped
    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        if not request.model_name:
            raise InvalidInput("model_name is required")
        await self.dp.load(request.model_name)
        return pb.RepositoryModelLoadResponse()

    @_mapped
    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        if not request.model_name:
            raise InvalidInput("model_name is required")
        await self.dp.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()


def serialize(message: Any) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()


Method = tuple[Callable[[Any, Any], Awaitable[Any]], Callable[[bytes], Any]]


def descriptor() -> Any:
    """The service's protobuf descriptor: its methods and their message types."""
    return pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]


def methods(servicer: Servicer) -> dict[str, Method]:
    """Every method of the service by name: the servicer's coroutine and a request parser that never raises (both
    gRPC front ends serve from this table)."""
    table = {}
    for method in descriptor().methods:
        table[method.name] = (getattr(servicer, method.name), _lenient(pb_message(method.input_type.name).FromString))
    return table


def build_server(
    dataplane: DataPlane, max_send_bytes: int, max_receive_bytes: int, reuse_port: bool = False
) -> grpc.aio.Server:
    options = [
        ("grpc.max_send_message_length", max_send_bytes),
        ("grpc.max_receive_message_length", max_receive_bytes),
        ("grpc.so_reuseport", int(reuse_port)),  # only worker processes share a port on purpose
        ("grpc.max_connection_idle_ms", IDLE_MS),  # idle clients do not hold descriptors forever
    ]
    server = grpc.aio.server(options=options)
    handlers = {}
    for name, (call, deserialize) in methods(Servicer(dataplane)).items():
        # ModelInfer may hand back pre-encoded bytes (wire.py); everything else is a message
        handlers[name] = grpc.unary_unary_rpc_method_handler(
            call, request_deserializer=deserialize, response_serializer=serialize
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)  # the per-call fast path
    return server


class Undecodable:
    """A request whose bytes are not the method's message: answered INVALID_ARGUMENT by the method (a failing
    deserializer would make gRPC answer INTERNAL)."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


def _lenient(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception as exc:  # protobuf's DecodeError, or anything its parser raises
            return Undecodable(f"the request is not a valid protobuf message: {exc}")

    return deserialize


def pb_message(name: str) -> Any:
    return getattr(pb, name)
