"""Server gRPC transport: gRPC's unary calls over modelplane's own HTTP/2 (h2.py) — method lookup, message framing,
deadlines, metadata and statuses — serving the same Servicer methods as the grpcio server (`--grpc-server`)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from dataclasses import replace
from typing import Any

import grpc

from modelplane.server.grpc.h2 import H2Connection
from modelplane.server.grpc.h2frames import H2Limits, Stream
from modelplane.server.grpc.servicer import SERVICE, Method, serialize

log = logging.getLogger("modelplane.grpc")
_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}
_RESERVED = {b"te", b"content-type", b"grpc-timeout", b"grpc-encoding", b"grpc-accept-encoding"}
MAX_MESSAGE_TEXT = 4096  # a grpc-message longer than this is cut: the trailers stay within one frame


def _int(n: int, prefix_bits: int, first: int = 0) -> bytes:
    """An HPACK integer (RFC 7541 5.1) with `first` in the bits above the prefix."""
    limit = (1 << prefix_bits) - 1
    if n < limit:
        return bytes((first | n,))
    out = bytearray((first | limit,))
    n -= limit
    while n >= 128:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def literal(name: bytes, value: bytes) -> bytes:
    """A header field as a literal without indexing, plain (not Huffman) strings: nothing enters a table."""
    return b"\x00" + _int(len(name), 7) + name + _int(len(value), 7) + value


def _percent(text: str) -> bytes:
    """grpc-message's encoding: UTF-8, with bytes outside printable ASCII and '%' as %XX."""
    return b"".join(
        bytes((c,)) if 0x20 <= c <= 0x7E and c != 0x25 else b"%%%02X" % c for c in text.encode()[:MAX_MESSAGE_TEXT]
    )


STATUS_200 = b"\x88"  # :status 200, static table index 8
HEAD = STATUS_200 + literal(b"content-type", b"application/grpc")
OK = literal(b"grpc-status", b"0")


def status_block(code: grpc.StatusCode, message: str, metadata: tuple[tuple[str, str], ...] = ()) -> bytes:
    block = literal(b"grpc-status", str(code.value[0]).encode())
    if message:
        block += literal(b"grpc-message", _percent(message))
    for key, value in metadata:
        if key.isascii() and key.islower() and value.isascii() and value.isprintable():
            block += literal(key.encode(), value.encode())
    return block


class Abort(Exception):
    def __init__(self, code: grpc.StatusCode, details: str, metadata: tuple[tuple[str, str], ...]) -> None:
        super().__init__(details)
        self.code, self.details, self.metadata = code, details, metadata


class Context:
    """What the Servicer asks of a call: its metadata, the time left, and abort."""

    __slots__ = ("_deadline", "_metadata")

    def __init__(self, metadata: tuple[tuple[str, str | bytes], ...], deadline: float | None) -> None:
        self._metadata, self._deadline = metadata, deadline

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        raise Abort(code, details, tuple(trailing_metadata or ()))


def _deadline(value: bytes) -> float | None:
    """grpc-timeout: up to 8 digits and a unit."""
    unit = _TIMEOUT_UNITS.get(value[-1:])
    digits = value[:-1]
    if unit is None or not digits.isdigit() or len(digits) > 8:
        return None
    return time.monotonic() + int(digits) * unit


def _metadatum(key: bytes, value: bytes) -> tuple[str, str | bytes]:
    if key.endswith(b"-bin"):
        with contextlib.suppress(ValueError):
            return key.decode("latin-1"), base64.b64decode(value + b"=" * (-len(value) % 4))
        return key.decode("latin-1"), b""
    return key.decode("latin-1"), value.decode("latin-1")


class GrpcH2Server:
    """Listens, hands each connection an H2Connection, and answers every finished request with the method its path
    names (`table`: the Servicer's, from servicer.methods)."""

    def __init__(
        self,
        table: dict[str, Method],
        max_send: int,
        max_receive: int,
        service: str = SERVICE,
        limits: H2Limits | None = None,
    ) -> None:
        self.methods = {f"/{service}/{name}".encode(): method for name, method in table.items()}
        self.max_send, self.max_receive = max_send, max_receive
        self.limits = replace(limits or H2Limits(), max_body=max_receive + 5)  # one message and its 5-byte prefix
        self.connections: set[H2Connection] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self.ports: list[int] = []

    async def start(self, host: str, port: int, reuse_port: bool = False) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: H2Connection(self.handle, self.limits, self.connections),
            host,
            port,
            backlog=2048,
            reuse_address=True,
            reuse_port=reuse_port or None,
        )
        self._servers.append(server)
        self.ports += [s.getsockname()[1] for s in server.sockets]

    async def stop(self, grace: float) -> None:
        """Stop accepting; every connection refuses new calls (GOAWAY) and closes once its calls are answered,
        or after `grace` seconds."""
        for server in self._servers:
            server.close()
        for conn in list(self.connections):
            conn.shut_down()
        if self.connections:
            waiters = [asyncio.ensure_future(c.closed.wait()) for c in self.connections]
            _, pending = await asyncio.wait(waiters, timeout=grace)
            for waiter in pending:
                waiter.cancel()
        for conn in list(self.connections):
            conn.transport.close()
        for server in self._servers:
            await server.wait_closed()

    async def handle(self, conn: H2Connection, stream: Stream) -> None:
        method = path = ctype = None
        deadline: float | None = None
        metadata: list[tuple[str, str | bytes]] = []
        for key, value in stream.headers:
            if key[:1] == b":":
                if key == b":path":
                    path = value
                elif key == b":method":
                    method = value
            elif key == b"content-type":
                ctype = value
            elif key == b"grpc-timeout":
                deadline = _deadline(value)
            elif key not in _RESERVED:
                metadata.append(_metadatum(key, value))
        if method != b"POST":
            await conn.respond(stream, b"\x08\x03405", b"", b"")
            return
        if ctype is None or not ctype.startswith(b"application/grpc"):
            await conn.respond(stream, b"\x08\x03415", b"", b"")
            return
        found = self.methods.get(path or b"")
        if found is None:
            text = f"Method not found: {(path or b'').decode('latin-1')[:200]}"
            await conn.respond(stream, HEAD, b"", status_block(grpc.StatusCode.UNIMPLEMENTED, text))
            return
        call, parse = found
        try:
            message = self._message(stream)
            reply = await call(parse(message), Context(tuple(metadata), deadline))
            data = serialize(reply)
            if len(data) > self.max_send:
                raise Abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the response is {len(data)} bytes; --grpc-max-message-bytes allows {self.max_send}",
                    (),
                )
        except Abort as exc:
            await conn.respond(stream, HEAD, b"", status_block(exc.code, exc.details, exc.metadata))
            return
        except Exception as exc:  # the Servicer maps its own errors; this is a bug of ours
            log.exception("gRPC call %s failed", path)
            await conn.respond(stream, HEAD, b"", status_block(grpc.StatusCode.INTERNAL, type(exc).__name__))
            return
        await conn.respond(stream, HEAD, b"\x00" + len(data).to_bytes(4, "big") + data, OK)

    def _message(self, stream: Stream) -> bytes:
        """The request's one message, from its length-prefixed framing."""
        if stream.overflow:
            raise Abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the request is larger than --grpc-max-message-bytes ({self.max_receive} bytes)",
                (),
            )
        body = stream.body()
        if len(body) < 5:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "the request has no gRPC message", ())
        if body[0] == 1:
            raise Abort(grpc.StatusCode.UNIMPLEMENTED, "compressed messages are not supported: send identity", ())
        size = int.from_bytes(body[1:5], "big")
        if body[0] != 0 or size != len(body) - 5:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "a unary call takes exactly one length-prefixed message", ())
        return body[5:]
