"""Server REST transport: uvicorn's httptools protocol with the limits it lacks — a cap on open connections
(answered at once with 503 and closed) and a deadline for a request's headers, counted from the moment a
connection opens or a new request begins (uvicorn only times out idle keep-alive connections after a response,
so a connection that never sends a request, or sends its headers a byte at a time, would be held forever)."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from modelplane.server.rest.limits import BUSY_RESPONSE, ConnectionLimits, connection_cap, sweep_tick


def guarded_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """An HttpToolsProtocol class enforcing `limits` (pass it as uvicorn.Config(http=...)).

    Header deadlines are timestamps checked by one sweep per server and tick, not a timer per request: arming one
    costs an attribute write on the hot path instead of a TimerHandle allocation and cancellation."""
    cap = connection_cap(limits.max_connections)
    timeout = limits.header_timeout_s
    tick = sweep_tick(timeout)
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
            if timeout > 0 and self.header_deadline is None:
                self.header_deadline = self.loop.time() + timeout

        def on_headers_complete(self) -> None:
            self.header_deadline = None
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self.header_deadline = None
            if self.parser is None or self not in self.connections:  # refused at connection_made
                return
            super().connection_lost(exc)

    return GuardedHttpToolsProtocol
