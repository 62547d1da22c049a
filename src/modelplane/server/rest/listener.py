"""Server REST transport: modelplane's HTTP/1.1 server — listening sockets, the deadline sweep, graceful shutdown;
each connection is an h1.Connection."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from modelplane.server.rest.h1 import Connection, Shared
from modelplane.server.rest.limits import ConnectionLimits, connection_cap, sweep_tick


class HttpServer:
    """Serves an ASGI app over HTTP/1.1 (no lifespan, no WebSocket: the data plane needs neither)."""

    def __init__(self, app: Any, limits: ConnectionLimits, access_log: bool = False) -> None:
        self.limits = limits
        self.shared = Shared(app, limits, connection_cap(limits.max_connections), access_log)
        self._servers: list[asyncio.AbstractServer] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self.ports: list[int] = []

    async def start(self, host: str, port: int, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        shared = self.shared

        def factory() -> Connection:
            return Connection(shared, loop)

        if sockets:
            for sock in sockets:
                self._servers.append(await loop.create_server(factory, sock=sock, backlog=2048))
        else:
            self._servers.append(await loop.create_server(factory, host, port, backlog=2048, reuse_address=True))
        for server in self._servers:
            self.ports += [s.getsockname()[1] for s in server.sockets]
        if self.limits.header_timeout_s > 0 or self.limits.keep_alive_s > 0:
            tick = sweep_tick(self.limits.header_timeout_s or self.limits.keep_alive_s)
            self._sweeper = loop.call_later(tick, self._sweep, loop, tick)

    def _sweep(self, loop: asyncio.AbstractEventLoop, tick: float) -> None:
        """Close connections past their deadline: headers not finished in time, or idle too long after an answer.
        One timestamp check per connection and tick, instead of a timer armed and cancelled per request."""
        now = loop.time()
        for conn in list(self.shared.connections):
            deadline = conn.deadline
            if deadline is not None and deadline <= now and not conn.transport.is_closing():
                conn.close()
        self._sweeper = loop.call_later(tick, self._sweep, loop, tick)

    async def shutdown(self, grace_s: float) -> None:
        """Stop accepting, close idle connections, let requests in flight finish (up to `grace_s`), then close the
        rest and cancel what still runs."""
        shared = self.shared
        shared.closing = True
        for server in self._servers:
            server.close()
        for conn in list(shared.connections):
            if not conn.busy():
                conn.close()
        shared.drained = asyncio.Event()
        shared.check_drained()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(shared.drained.wait(), grace_s)
        for conn in list(shared.connections):
            conn.close()
        for task in list(shared.tasks):
            task.cancel()
        if shared.tasks:
            await asyncio.wait(list(shared.tasks), timeout=1)
        if self._sweeper is not None:
            self._sweeper.cancel()
        for server in self._servers:
            await server.wait_closed()
