"""gRPC over modelplane's HTTP/2 (server/grpc/h2server.py) with grpcio's own client: statuses, trailing metadata,
deadlines, binary metadata, message limits, compression and unknown methods; its header encoding checked against
the `hpack` decoder."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import hpack
import pytest

from modelplane.server.grpc.h2server import Context, GrpcH2Server, _deadline, literal, status_block

SERVICE = "test.Echo"


@pytest.mark.parametrize("value", [b"", b"x", b"y" * 126, b"z" * 127, b"w" * 300, b"v" * 20_000])
def test_literals_decode_with_hpack(value):
    block = literal(b"grpc-message", value) + literal(b"k" * 200, b"v")
    assert hpack.Decoder(max_header_list_size=1 << 20).decode(block, raw=True) == [
        (b"grpc-message", value),
        (b"k" * 200, b"v"),
    ]


def test_status_block_percent_encodes_the_message_and_drops_unsafe_metadata():
    block = status_block(grpc.StatusCode.NOT_FOUND, "50% ünïcode\nline", (("retry-after", "1"), ("Bad", "x")))
    assert hpack.Decoder().decode(block, raw=True) == [
        (b"grpc-status", b"5"),
        (b"grpc-message", b"50%25 %C3%BCn%C3%AFcode%0Aline"),
        (b"retry-after", b"1"),
    ]


def test_grpc_timeout_parsing():
    assert _deadline(b"5S") is not None and _deadline(b"100m") is not None
    for bad in (b"", b"S", b"5", b"123456789S", b"-1S", b"5x"):
        assert _deadline(bad) is None


def serve_and_call(table: dict[str, Any], call: Callable[[grpc.Channel], Any], **server: Any) -> Any:
    """Serve `table` on loopback and run `call(channel)` from a client thread; its result."""

    async def main() -> Any:
        srv = GrpcH2Server(table, server.get("max_send", 1 << 20), server.get("max_receive", 1 << 20), SERVICE)
        await srv.start("127.0.0.1", 0)
        try:

            def client() -> Any:
                with grpc.insecure_channel(f"127.0.0.1:{srv.ports[0]}") as channel:
                    return call(channel)

            return await asyncio.get_running_loop().run_in_executor(None, client)
        finally:
            await srv.stop(1.0)

    return asyncio.run(main())


def unary(channel: grpc.Channel, method: str, **kwargs: Any) -> Any:
    fn = channel.unary_unary(f"/{SERVICE}/{method}", request_serializer=None, response_deserializer=None)
    return fn(b"payload", **kwargs)


def failure(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def test_a_call_sees_its_metadata_and_deadline_and_answers():
    seen: dict[str, Any] = {}

    async def echo(request: bytes, context: Context) -> bytes:
        seen["metadata"] = dict(context.invocation_metadata())
        seen["remaining"] = context.time_remaining()
        return b"echo:" + request

    metadata = (("x-user", "ann"), ("trace-bin", b"\x00\xff"))
    reply = serve_and_call({"Echo": (echo, bytes)}, lambda ch: unary(ch, "Echo", metadata=metadata, timeout=30))
    assert reply == b"echo:payload"
    assert seen["metadata"]["x-user"] == "ann" and seen["metadata"]["trace-bin"] == b"\x00\xff"
    assert 0 < seen["remaining"] <= 30


def test_abort_reaches_the_client_with_code_details_and_trailing_metadata():
    async def refuse(request: bytes, context: Context) -> bytes:
        await context.abort(grpc.StatusCode.UNAVAILABLE, "busy: retry", (("retry-after", "2"),))
        raise AssertionError("abort returns")

    def call(channel: grpc.Channel) -> grpc.RpcError:
        return failure(lambda: unary(channel, "Refuse"))

    error = serve_and_call({"Refuse": (refuse, bytes)}, call)
    assert error.code() == grpc.StatusCode.UNAVAILABLE and error.details() == "busy: retry"
    assert ("retry-after", "2") in tuple(error.trailing_metadata())


def test_unknown_methods_compressed_and_oversized_messages_get_clear_statuses():
    async def echo(request: bytes, context: Context) -> bytes:
        return request

    async def grow(request: bytes, context: Context) -> bytes:
        return request * 1000

    def call(channel: grpc.Channel) -> list[tuple[grpc.StatusCode, str]]:
        echo_call = channel.unary_unary(f"/{SERVICE}/Echo")
        assert echo_call(b"a" * 3000) == b"a" * 3000
        errors = [
            failure(lambda: unary(channel, "Nope")),
            failure(lambda: echo_call(b"a" * 3000, compression=grpc.Compression.Gzip)),  # gzip: small ones are not
            failure(lambda: echo_call(b"x" * 5000)),
            failure(lambda: unary(channel, "Grow")),  # 7,000 bytes back: past max_send
        ]
        return [(e.code(), e.details()) for e in errors]

    table = {"Echo": (echo, bytes), "Grow": (grow, bytes)}
    codes = serve_and_call(table, call, max_receive=4096, max_send=4096)
    assert [c for c, _ in codes] == [
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ]
    assert "Nope" in codes[0][1] and "compressed" in codes[1][1] and "4096" in codes[2][1]


def test_a_client_that_gives_up_cancels_the_call():
    cancelled = asyncio.Event()

    async def slow(request: bytes, context: Context) -> bytes:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return b""

    def call(channel: grpc.Channel) -> grpc.StatusCode:
        return failure(lambda: unary(channel, "Slow", timeout=0.3)).code()

    assert serve_and_call({"Slow": (slow, bytes)}, call) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert cancelled.is_set()
