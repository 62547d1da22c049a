"""Local backend: the gateway's HTTP/1.1 client — a keep-alive connection pool per replica, no per-request client
machinery (a proxied request costs tens of microseconds here, against ~300 µs through httpx)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

Headers = list[tuple[bytes, bytes]]
HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"te",
    b"trailer",
    b"upgrade",
    b"host",
    b"proxy-connection",
    b"content-length",
    b"expect",  # the gateway has the whole body already; an interim 100 from the replica would only confuse framing
}
_NO_BODY = {204, 304}


class UpstreamError(Exception):
    """The replica could not be reached or hung up before answering."""


class Upstream:
    def __init__(self, base_url: str, max_idle: int = 64) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.authority = f"{self.host}:{self.port}".encode()
        self.max_idle = max_idle
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(
        self, method: str, target: str, headers: Headers, body: bytes
    ) -> tuple[int, Headers, bytes | Stream]:
        """Send one request and read its response — whole, or for an event stream (`text/event-stream`, chunked) a
        `Stream` of its chunks. ValueError: the request cannot be written safely (a control character in the
        target, a header name or value); UpstreamError: the replica failed."""
        raw_target = target.encode("latin-1")
        head = [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (method.encode(), raw_target, self.authority)]
        lines = 4  # the request line, host, content-length and the blank line that ends the head
        for k, v in headers:
            if k not in HOP_BY_HOP:
                head.append(b"%s: %s\r\n" % (k, v))
                lines += 1
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        start = b"".join(head)
        # exactly one CR and one LF per line, no NUL: nothing a client sent can start a second request
        if start.count(b"\n") != lines or start.count(b"\r") != lines or b"\0" in start or b" " in raw_target:
            raise ValueError("a header or the request target holds a control character")
        payload = start + body
        for attempt in range(2):  # an idle connection the replica already closed gets one fresh retry
            reused = bool(self.idle)
            try:
                conn = self.idle.pop() if reused else await asyncio.open_connection(self.host, self.port)
            except OSError as exc:
                raise UpstreamError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
            reader, writer = conn
            try:
                writer.write(payload)
                head = await _read_head(reader, method == "HEAD")
                if head.chunked and head.streamed:  # Server-Sent Events: forwarded as they come
                    return head.status, head.headers, Stream(self, conn, head.keep)
                data = await _read_body(reader, head)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                writer.close()
                if reused and attempt == 0:
                    continue
                raise UpstreamError(f"{self.host}:{self.port} hung up: {exc}") from exc
            except BaseException:  # cancelled (a timeout): the connection is mid-exchange, never reuse it
                writer.close()
                raise
            self._done(conn, head.keep)
            return head.status, head.headers, data
        raise UpstreamError("unreachable")

    def _done(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], keep: bool) -> None:
        # reuse only a connection whose framing is certain: nothing may follow the response we just read
        reader, writer = conn
        if keep and not _buffered(reader) and len(self.idle) < self.max_idle:
            self.idle.append(conn)
        else:
            writer.close()

    def close(self) -> None:
        for _, writer in self.idle:
            with contextlib.suppress(Exception):
                writer.close()
        self.idle.clear()


def _buffered(reader: asyncio.StreamReader) -> int:
    """Bytes the replica sent beyond the response (StreamReader keeps them in its private buffer)."""
    return len(getattr(reader, "_buffer", b""))


@dataclass(slots=True)
class _Head:
    status: int
    headers: Headers
    length: int | None
    chunked: bool
    keep: bool
    streamed: bool  # an event stream: its chunks are forwarded as they arrive
    empty: bool  # no body (HEAD, 204, 304)


async def _read_head(reader: asyncio.StreamReader, head_request: bool = False) -> _Head:
    """A response's status line and headers. ValueError for anything malformed or ambiguous (the caller closes the
    connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    version, status = lines[0][:8], int(lines[0][9:12])
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or status < 200:
        raise ValueError(f"unexpected status line {lines[0][:40]!r}")
    headers: Headers = []
    length: int | None = None
    chunked = streamed = False
    keep = version == b"HTTP/1.1"
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        key, value = name.strip().lower(), value.strip()
        if not colon or not key:
            raise ValueError(f"malformed response header {line[:40]!r}")
        if key == b"content-length":
            if length is not None or not value.isdigit():
                raise ValueError("duplicate or invalid Content-Length")
            length = int(value)
        elif key == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif key == b"connection":
            keep = b"close" not in value.lower() if version == b"HTTP/1.1" else b"keep-alive" in value.lower()
        elif key == b"content-type":
            streamed = value.lower().startswith(b"text/event-stream")
        if key not in HOP_BY_HOP:
            headers.append((key, value))
    if chunked and length is not None:
        raise ValueError("both Content-Length and Transfer-Encoding: chunked")
    return _Head(status, headers, length, chunked, keep, streamed, head_request or status in _NO_BODY)


async def _read_chunk(reader: asyncio.StreamReader) -> bytes:
    """One chunk of a chunked body (b"" for the last)."""
    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
    part = await reader.readexactly(size + 2)
    if part[-2:] != b"\r\n":
        raise ValueError("malformed chunk")
    return part[:-2]


async def _read_body(reader: asyncio.StreamReader, head: _Head) -> bytes:
    if head.empty:
        return b""
    if head.chunked:
        parts = []
        while part := await _read_chunk(reader):
            parts.append(part)
        return b"".join(parts)
    if head.length is not None:
        return await reader.readexactly(head.length)
    head.keep = False
    return await reader.read()


class Stream:
    """The chunks of an event-stream response as the replica sends them. Iterate it to the end (the connection
    goes back to the pool) or `close()` it (the connection is closed: the replica sees its client leave)."""

    def __init__(self, owner: Upstream, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], keep: bool) -> None:
        self.owner, self.conn, self.keep = owner, conn, keep
        self.finished = False
        self.on_done: Callable[[], None] | None = None  # called once when the stream ends or is closed

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        reader = self.conn[0]
        try:
            while part := await _read_chunk(reader):
                yield part
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            self.close()
            raise UpstreamError(f"{self.owner.host}:{self.owner.port} broke off the stream: {exc}") from exc
        except BaseException:
            self.close()
            raise
        if not self.finished:
            self.finished = True
            self.owner._done(self.conn, self.keep)
            self._ended()

    def close(self) -> None:
        if not self.finished:
            self.finished = True
            self.conn[1].close()
            self._ended()

    def _ended(self) -> None:
        done, self.on_done = self.on_done, None
        if done is not None:
            done()
