"""Server REST transport: uvicorn's httptools protocol with the limits it lacks — a cap on open connections
(answered at once with 503 and closed) and a deadline for a request's headers, counted from the moment a
connection opens or a new request begins (uvicorn only times out idle keep-alive connections after a response,
so a connection that never sends a request, or sends its headers a byte at a time, would be held forever)."""

from __future__ import annotations

import asyncio
import resource
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_BUSY = b'{"error": "too many open connections; retry shortly"}'
_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY)
)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int = 1000  # beyond it a new connection gets 503 and is closed (0: only the fd limit)
    header_timeout_s: float = 10.0  # from connection open / request start to the end of its headers
    keep_alive_s: float = 5.0  # an idle keep-alive connection is closed after this long


def connection_cap(wanted: int) -> int:
    """`wanted`, lowered to 3/4 of the process's file-descriptor limit (the rest is for models, logs, upstreams):
    past the fd limit accept() fails and the whole server stops answering."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return wanted
    return min(wanted, max(16, soft * 3 // 4)) if wanted else max(16, soft * 3 // 4)


def guarded_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """An HttpToolsProtocol class enforcing `limits` (pass it as uvicorn.Config(http=...))."""
    cap = connection_cap(limits.max_connections)

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            if len(self.connections) >= cap:
                self.transport = transport
                transport.write(_BUSY_RESPONSE)
                transport.close()
                return
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            if self._header_timer is None and limits.header_timeout_s > 0:
                self._header_timer = self.loop.call_later(limits.header_timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self.parser is None or self not in self.connections:  # refused at connection_made
                return
            super().connection_lost(exc)

    return GuardedHttpToolsProtocol
