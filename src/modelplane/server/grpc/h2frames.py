"""Server gRPC transport: HTTP/2's vocabulary for h2.py (RFC 9113) — frame types, flags, error codes, the frame
builders, the connection's limits and one request stream's state."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

from modelplane.server.rest.limits import ConnectionLimits, connection_cap

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEAD = struct.Struct(">BHBBI")  # length (8 + 16 bits), type, flags, stream id
U32 = struct.Struct(">I")
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, REFUSED_STREAM = 0, 1, 2, 3, 6, 7
COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 0x9, 0xB
MAX_FRAME = 16_384  # the protocol's default frame size: we never ask for larger ones
STREAM_WINDOW = 1 << 20  # what each request may send before we grant more
CONNECTION_WINDOW = 16 << 20
MAX_WINDOW = (1 << 31) - 1


class ProtocolViolation(Exception):
    """The peer broke the protocol: the connection ends with GOAWAY carrying `code`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class H2Limits:
    max_streams: int = 100  # requests in flight per connection, reset ones included until their handler ends
    max_header_bytes: int = 64 * 1024  # one request's header block (HEADERS + CONTINUATION), and decoded
    max_body: int = 64 << 20  # a request's bytes; past it the handler is called at once with `overflow` set
    idle_s: float = 300.0  # a connection with nothing in flight for this long is closed
    preface_s: float = 10.0  # a new connection must open its first request within this
    max_connections: int = 0  # open connections past it are sent away at once (0: no cap)


def limits_for(connections: ConnectionLimits) -> H2Limits:
    """The HTTP/2 limits that follow a server's connection limits (--max-connections, --header-timeout): the model
    server's gRPC and the platform gateway's take them from the same settings as their HTTP ports."""
    return H2Limits(preface_s=connections.header_timeout_s, max_connections=connection_cap(connections.max_connections))


def frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return FRAME_HEAD.pack(n >> 16, n & 0xFFFF, ftype, flags, stream_id) + payload


def goaway(last_stream: int, code: int, message: str = "") -> bytes:
    return frame(GOAWAY, 0, 0, U32.pack(last_stream) + U32.pack(code) + message.encode()[:256])


class Stream:
    """One request: its headers, its body so far, and how much of an answer the peer lets us send."""

    __slots__ = (
        "chunks",
        "counted",
        "headers",
        "id",
        "overflow",
        "recv_window",
        "remote_closed",
        "send_window",
        "size",
        "task",
    )

    def __init__(self, stream_id: int, headers: list[tuple[bytes, bytes]], send_window: int) -> None:
        self.id = stream_id
        self.headers = headers
        self.chunks: list[bytes] = []
        self.size = 0
        self.send_window = send_window
        self.recv_window = STREAM_WINDOW
        self.remote_closed = False
        self.overflow = False  # the body passed max_body: its bytes were dropped
        self.task: asyncio.Task[None] | None = None
        self.counted = True  # in the connection's `active` until answered, or its handler has ended

    def body(self) -> bytes:
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
