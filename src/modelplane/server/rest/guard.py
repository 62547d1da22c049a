"""Server REST transport: uvicorn's httptools protocol with the limits it lacks — a cap on open connections
(answered at once with 503 and closed) and a deadline for a request's headers, counted from the moment a
connection opens or a new request begins (uvicorn only times out idle keep-alive connections after a response,
so a connection that never sends a request, or sends its headers a byte at a time, would be held forever), and a
cap on the size of a request's head (431; httptools has none, so uvicorn would buffer headers without end)."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from modelplane.server.rest.limits import BUSY_RESPONSE, HEAD_TOO_LARGE, ConnectionLimits, connection_cap, sweep_tick


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head past the limit (already answered with 431)."""


def guarded_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """An HttpToolsProtocol class enforcing `limits` (pass it as uvicorn.Config(http=...)).

    Header deadlines are timestamps checked by one sweep per server and tick, not a timer per request: arming one
    costs an attribute write on the hot path instead of a TimerHandle allocation and cancellation."""
    cap = connection_cap(limits.max_connections)
    timeout = limits.header_timeout_s
    tick = sweep_tick(timeout)
    max_head = limits.max_header_bytes
    sweeping: set[int] = set()  # id() of each server's connection set that has a sweep scheduled

    def sweep(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        now = loop.time()
        for conn in list(connections):
            deadline = conn.header_deadline
            if deadline is not None and deadline <= now and not conn.transport.is_closing():
                conn.transport.close()
        if connections:
            loop.call_later(tick, sweep, loop, connections)
        else:
            sweeping.discard(id(connections))

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        header_deadline: float | None = None
        head_bytes = 0  # the request line's target and the headers of the request being parsed
        refused = False  # answered 431: uvicorn's own 400 for the parser error that follows is not sent

        def connection_made(self, transport: Any) -> None:
            if len(self.connections) >= cap:
                self.transport = transport
                transport.write(BUSY_RESPONSE)
                transport.close()
                return
            super().connection_made(transport)
            if timeout > 0:
                self.header_deadline = self.loop.time() + timeout
                if id(self.connections) not in sweeping:
                    sweeping.add(id(self.connections))
                    self.loop.call_later(tick, sweep, self.loop, self.connections)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.head_bytes = 0
            if timeout > 0 and self.header_deadline is None:
                self.header_deadline = self.loop.time() + timeout

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def _count(self, n: int) -> None:
            self.head_bytes += n
            if self.head_bytes > max_head:
                self.refused = True
                self.transport.write(HEAD_TOO_LARGE)
                self.transport.close()
                raise _HeadTooLarge  # httptools turns it into the parser error uvicorn handles

        def send_400_response(self, msg: str) -> None:
            if not self.refused:
                super().send_400_response(msg)

        def on_headers_complete(self) -> None:
            self.header_deadline = None
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self.header_deadline = None
            if self.parser is None or self not in self.connections:  # refused at connection_made
                return
            super().connection_lost(exc)

    return GuardedHttpToolsProtocol
