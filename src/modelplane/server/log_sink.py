"""Server: the payload logger's HTTP/1.1 client — keep-alive and pipelined, so an event costs microseconds, not a
request's worth of client machinery (httpx spends ~200 µs of CPU a POST, as much as serving the inference)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit


class SinkError(Exception):
    pass


class PipelinedPoster:
    """POSTs batches of pre-encoded events on one persistent connection, all written at once, answers read in order.

    When the sink closes the connection mid-batch (HTTP/1.0, `Connection: close`, a restart), the events it did not
    answer are sent again on a new connection; a batch that makes no progress twice raises SinkError.
    """

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"logger URL must be http(s)://host[:port]/path, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = parts.scheme == "https"
        self.timeout_s = timeout_s
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        authority = parts.netloc.rsplit("@", 1)[-1]
        self.head = f"POST {target} HTTP/1.1\r\nhost: {authority}\r\n".encode("latin-1")
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    def encode(self, header_lines: bytes, body: bytes) -> bytes:
        """One POST: `header_lines` are rendered `name: value\\r\\n` lines."""
        return b"%s%scontent-length: %d\r\n\r\n%s" % (self.head, header_lines, len(body), body)

    async def post(self, requests: list[bytes]) -> list[int]:
        """Send every request; returns their status codes in order."""
        statuses: list[int] = []
        stalled = 0
        async with asyncio.timeout(self.timeout_s):
            while len(statuses) < len(requests):
                before = len(statuses)
                await self._round(requests[before:], statuses)
                if len(statuses) == before:
                    stalled += 1
                    if stalled >= 2:
                        raise SinkError(f"the sink at {self.host}:{self.port} answers nothing")
        return statuses

    async def _round(self, pending: list[bytes], statuses: list[int]) -> None:
        try:
            reader, writer = await self._connection()
            writer.write(b"".join(pending))
            await writer.drain()
            responses = _Responses(reader)
            for _ in pending:
                status, keep = await responses.next()
                statuses.append(status)
                if not keep:
                    break
            else:
                return
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass  # the connection broke: reconnect and resend what was not answered
        await self.close()

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._conn is None:
            context = ssl.create_default_context() if self.tls else None
            self._conn = await asyncio.open_connection(self.host, self.port, ssl=context)
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            writer = self._conn[1]
            self._conn = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class _Responses:
    """Reads pipelined responses out of one buffer, refilling it only when a response is incomplete (one read
    usually holds every answer of a batch, so most responses cost no await). A head identical to the previous
    one (sinks answer alike) is not parsed again."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.buf = b""
        self.pos = 0
        self._last: tuple[bytes, int, bool, int | None, bool] | None = None  # head, status, keep, length, chunked

    async def _fill(self) -> None:
        chunk = await self.reader.read(65536)
        if not chunk:
            raise asyncio.IncompleteReadError(self.buf[self.pos :], None)
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0

    async def _find(self, marker: bytes) -> int:
        while (end := self.buf.find(marker, self.pos)) < 0:
            await self._fill()
        return end

    async def _skip(self, n: int) -> None:
        while len(self.buf) - self.pos < n:
            await self._fill()
        self.pos += n

    async def next(self) -> tuple[int, bool]:
        """(status, keep the connection) of the next response, its body consumed."""
        end = await self._find(b"\r\n\r\n")
        head = self.buf[self.pos : end]
        self.pos = end + 4
        if self._last is None or self._last[0] != head:
            self._last = (head, *_parse_head(head))
        _, status, keep, length, chunked = self._last
        if chunked:
            while True:
                line_end = await self._find(b"\r\n")
                size = int(self.buf[self.pos : line_end].split(b";")[0], 16)
                self.pos = line_end + 2
                await self._skip(size + 2)
                if size == 0:
                    break
        elif length is not None:
            await self._skip(length)
        elif status >= 200 and status not in (204, 304):
            while await self.reader.read(65536):  # the body runs to the end of the connection
                pass
            self.buf, self.pos = b"", 0
            keep = False
        return status, keep


def _parse_head(head: bytes) -> tuple[int, bool, int | None, bool]:
    """(status, keep-alive, content-length or None, chunked) of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    version, status = lines[0][:8], int(lines[0][9:12])
    fields = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip().lower()
    connection = fields.get("connection", "")
    keep = "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
    length = int(fields["content-length"]) if "content-length" in fields else None
    return status, keep, length, "chunked" in fields.get("transfer-encoding", "")
