"""Local backend: the gateway's HTTP/1.1 client — a keep-alive connection pool per replica, no per-request client
machinery (a proxied request costs tens of microseconds here, against ~300 µs through httpx)."""

from __future__ import annotations

import asyncio
import contextlib
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
}


class UpstreamError(Exception):
    """The replica could not be reached or hung up before answering."""


class Upstream:
    def __init__(self, base_url: str, max_idle: int = 64) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.authority = f"{self.host}:{self.port}".encode()
        self.max_idle = max_idle
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(self, method: str, target: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        head = [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (method.encode(), target.encode("latin-1"), self.authority)]
        head += [b"%s: %s\r\n" % (k, v) for k, v in headers if k not in HOP_BY_HOP]
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        payload = b"".join(head) + body
        for attempt in range(2):  # an idle connection the replica already closed gets one fresh retry
            reused = bool(self.idle)
            try:
                conn = self.idle.pop() if reused else await asyncio.open_connection(self.host, self.port)
            except OSError as exc:
                raise UpstreamError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
            reader, writer = conn
            try:
                writer.write(payload)
                status, out, data, keep = await _read(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                writer.close()
                if reused and attempt == 0:
                    continue
                raise UpstreamError(f"{self.host}:{self.port} hung up: {exc}") from exc
            except BaseException:  # cancelled (a timeout): the connection is mid-exchange, never reuse it
                writer.close()
                raise
            if keep and len(self.idle) < self.max_idle:
                self.idle.append(conn)
            else:
                writer.close()
            return status, out, data
        raise UpstreamError("unreachable")

    def close(self) -> None:
        for _, writer in self.idle:
            with contextlib.suppress(Exception):
                writer.close()
        self.idle.clear()


async def _read(reader: asyncio.StreamReader) -> tuple[int, Headers, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    version, status = lines[0][:8], int(lines[0][9:12])
    headers: Headers = []
    length: int | None = None
    chunked = False
    keep = version == b"HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        key, value = name.strip().lower(), value.strip()
        if key == b"content-length":
            length = int(value)
        elif key == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif key == b"connection":
            keep = b"close" not in value.lower() if version == b"HTTP/1.1" else b"keep-alive" in value.lower()
        if key not in HOP_BY_HOP:
            headers.append((key, value))
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        body = b"".join(p[:-2] for p in parts)
    elif length is not None:
        body = await reader.readexactly(length)
    else:
        body, keep = await reader.read(), False
    return status, headers, body, keep
