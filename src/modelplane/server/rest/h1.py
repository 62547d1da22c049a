"""Server REST transport: modelplane's HTTP/1.1 connection — httptools parsing, keep-alive, pipelining, flow control
and the connection limits; each request is an exchange.Exchange (one ASGI call)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote

import httptools

from modelplane.server.rest.exchange import Exchange
from modelplane.server.rest.limits import BUSY_RESPONSE, HEAD_TOO_LARGE_TEXT, ConnectionLimits, plain


def _status_lines() -> dict[int, bytes]:
    from http import HTTPStatus

    return {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}


class Shared:
    """What every connection of one server shares: the app, the limits, the open connections, the Date header."""

    def __init__(self, app: Any, limits: ConnectionLimits, max_connections: int, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log
        self.limits = limits
        self.cap = max_connections
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.good_names: set[bytes] = set()  # response header names already checked
        # small writes held back for a burst (Connection.write), and the requests in flight over every connection
        self.outbox: list[tuple[asyncio.Transport, bytes | memoryview]] = []
        self.inflight = 0
        self.status_lines = _status_lines()
        self.closing = False
        self.drained: asyncio.Event | None = None  # set once closing and no connection has a request in flight
        self._date_second = 0
        self._date = b""

    def flush(self) -> None:
        """Write every connection's queued bytes, in the order they were queued."""
        box, self.outbox = self.outbox, []
        for transport, data in box:
            if not transport.is_closing():
                transport.write(data)

    def check_drained(self) -> None:
        if self.drained is not None and not any(c.busy() for c in self.connections):
            self.drained.set()

    def date(self) -> bytes:
        now = int(time.time())
        if now != self._date_second:
            self._date_second, self._date = now, b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._date


class _TooLarge(Exception):
    pass


class _BadTarget(Exception):
    pass


class Connection(asyncio.Protocol):
    """One client connection. Requests are answered in order; while one runs, the next (pipelined) waits."""

    def __init__(self, shared: Shared, loop: asyncio.AbstractEventLoop) -> None:
        self.shared = shared
        self.loop = loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.deadline: float | None = None  # header deadline, or when an idle keep-alive connection is closed
        self.idle = False  # `deadline` is the idle one: a new request replaces it with a header deadline
        self.current: Exchange | None = None  # the request being answered
        self.parsing: Exchange | None = None  # the request whose body is arriving
        self.waiting: deque[Exchange] = deque()  # pipelined requests behind `current`
        self.write_paused = False
        self.drained: asyncio.Future[None] | None = None
        self.upgraded = False
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self.expects = False  # the request being parsed asked for 100 Continue

    # --- asyncio.Protocol --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        shared = self.shared
        if len(shared.connections) >= shared.cap or shared.closing:
            transport.write(BUSY_RESPONSE)  # type: ignore[attr-defined]
            transport.close()
            return
        shared.connections.add(self)
        self.server = _address(transport.get_extra_info("sockname"))
        self.client = _address(transport.get_extra_info("peername"))
        if shared.limits.header_timeout_s > 0:
            self.deadline = self.loop.time() + shared.limits.header_timeout_s

    def data_received(self, data: bytes) -> None:
        if self.upgraded:
            return  # the bytes after an upgrade request are not HTTP/1.1; the connection closes after the answer
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.upgraded = True  # nothing to switch to: the upgrade request is answered, then the connection closes
            last = self.waiting[-1] if self.waiting else self.current
            if last is not None:
                last.keep_alive = False
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _TooLarge):
                self._refuse(431, HEAD_TOO_LARGE_TEXT)
            else:
                self._refuse(400, "Invalid HTTP request received.")

    def connection_lost(self, exc: Exception | None) -> None:
        self.shared.connections.discard(self)
        for exchange in (self.current, *self.waiting):
            if exchange is not None:
                exchange.disconnect()
        self.waiting.clear()
        if self.current is not None:
            self.shared.inflight -= 1
        self.current = self.parsing = None
        self.shared.check_drained()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    # --- httptools callbacks -------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self.expects = False
        if self.deadline is None or self.idle:
            timeout = self.shared.limits.header_timeout_s
            self.deadline = self.loop.time() + timeout if timeout > 0 else None
            self.idle = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expects = True
        self._headers.append((name, value))

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.shared.limits.max_header_bytes:
            raise _TooLarge

    def on_headers_complete(self) -> None:
        self.deadline = None
        parser = self.parser
        url = httptools.parse_url(self._url)
        raw_path = url.path
        try:
            path = raw_path.decode("ascii")
        except UnicodeDecodeError:
            raise _BadTarget from None
        if "%" in path:
            path = unquote(path)
        version = parser.get_http_version()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": version,
            "server": self.server,
            "client": self.client,
            "scheme": "http",
            "method": parser.get_method().decode("ascii"),
            "root_path": "",
            "path": path,
            "raw_path": raw_path,
            "query_string": url.query or b"",
            "headers": self._headers,
        }
        exchange = Exchange(self, scope, version != "1.0" and parser.should_keep_alive())
        self.parsing = exchange
        if self.current is None:
            self._start(exchange)
        else:
            self.waiting.append(exchange)
            self.transport.pause_reading()

    def on_body(self, body: bytes) -> None:
        exchange = self.parsing
        if exchange is not None:
            exchange.feed(body)

    def on_message_complete(self) -> None:
        exchange = self.parsing
        if exchange is not None:
            exchange.complete()
        self.parsing = None

    # --- requests ----------------------------------------------------------------------------------
    def _start(self, exchange: Exchange) -> None:
        self.current = exchange
        self.shared.inflight += 1
        tasks = self.shared.tasks
        task = self.loop.create_task(exchange.run(self.shared.app))
        tasks.add(task)  # the loop holds tasks weakly
        task.add_done_callback(tasks.discard)

    def finished(self, exchange: Exchange) -> None:
        """The answer to `exchange` is written: close, start the next pipelined request, or wait idle."""
        if exchange is not self.current:
            return
        self.current = None
        self.shared.inflight -= 1
        transport = self.transport
        if not exchange.keep_alive or self.shared.closing:
            self.close()
            self.shared.check_drained()
            return
        if self.waiting:
            self._start(self.waiting.popleft())
            if self.waiting:
                return
        transport.resume_reading()  # paused for pipelining, or for a body the app answered without reading
        if self.current is None and self.shared.limits.keep_alive_s > 0:
            # idle — or still receiving the body of a request already answered (discarded), which must not last
            self.deadline = self.loop.time() + self.shared.limits.keep_alive_s
            self.idle = True

    # --- writing: small writes wait for the end of the loop's turn and leave together -----------------------
    def write(self, data: bytes | memoryview) -> None:
        """Write `data` now if this is the only request in flight; else queue it until the last one in flight
        answers (or, if some wait on threads, until this turn of the event loop is over). Sixteen answers computed
        in one turn then leave in one burst that the client reads without sleeping in between, instead of one
        wake-up of the reader per socket write; one request at a time is not delayed at all."""
        shared = self.shared
        shared.outbox.append((self.transport, data))
        if shared.inflight <= 1:
            shared.flush()
        elif len(shared.outbox) == 1:
            self.loop.call_soon(shared.flush)

    def write_now(self, parts: tuple[bytes | memoryview, ...]) -> None:
        """Write at once, after what is queued (a large body: flow control must see it before the app sends more)."""
        self.shared.flush()
        self.transport.writelines(parts)

    def close(self) -> None:
        self.shared.flush()  # what this connection queued goes first
        self.transport.close()

    async def drain(self) -> None:
        if self.write_paused and not self.transport.is_closing():
            self.drained = self.loop.create_future()
            await self.drained

    def busy(self) -> bool:
        return self.current is not None or self.parsing is not None

    def _refuse(self, status: int, text: str) -> None:
        if self.current is None:  # an answer in progress would be corrupted; closing is all that is left
            self.write(plain(self.shared.status_lines[status], text))
        self.close()


def _address(value: Any) -> tuple[str, int] | None:
    return (str(value[0]), int(value[1])) if isinstance(value, tuple) and len(value) >= 2 else None
