"""Server REST transport: the limits every HTTP/1.1 front end enforces (both modelplane's own and uvicorn's)."""

from __future__ import annotations

import resource
from dataclasses import dataclass

BUSY_BODY = b'{"error": "too many open connections; retry shortly"}'
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(BUSY_BODY), BUSY_BODY)
)


def plain(status_line: bytes, text: str) -> bytes:
    """A short text/plain answer after which the connection closes (a front end's own refusals and failures)."""
    body = text.encode()
    return b"%scontent-type: text/plain; charset=utf-8\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s" % (
        status_line,
        len(body),
        body,
    )


HEAD_TOO_LARGE_TEXT = "Request header fields too large"  # past max_header_bytes, on either front end
HEAD_TOO_LARGE = plain(b"HTTP/1.1 431 Request Header Fields Too Large\r\n", HEAD_TOO_LARGE_TEXT)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int = 1000  # beyond it a new connection gets 503 and is closed (0: only the fd limit)
    header_timeout_s: float = 10.0  # from connection open / request start to the end of its headers
    keep_alive_s: float = 5.0  # an idle keep-alive connection is closed after this long
    max_header_bytes: int = 64 * 1024  # request line and headers together; past it 431 and the connection closes


def connection_cap(wanted: int) -> int:
    """`wanted`, lowered to 3/4 of the process's file-descriptor limit (the rest is for models, logs, upstreams):
    past the fd limit accept() fails and the whole server stops answering."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return wanted
    return min(wanted, max(16, soft * 3 // 4)) if wanted else max(16, soft * 3 // 4)


def sweep_tick(header_timeout_s: float) -> float:
    """How often deadlines are checked: a quarter of the header timeout, between 50 ms and 1 s."""
    return max(0.05, min(1.0, header_timeout_s / 4))
