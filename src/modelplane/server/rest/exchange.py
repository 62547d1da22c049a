"""Server REST transport: one HTTP/1.1 request and its answer on an h1.Connection — the ASGI `receive` and `send`
of one call of the app, with one write per fixed-length answer (status line, headers and body leave together: one
packet for a small answer instead of two or three)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelplane.server.rest.limits import plain

if TYPE_CHECKING:
    from modelplane.server.rest.h1 import Connection

log = logging.getLogger("modelplane.http")
access = logging.getLogger("modelplane.access")

HIGH_WATER = 64 * 1024  # buffered request body past which reading pauses until the app takes it
_NAME_BAD = re.compile(rb'[\x00-\x1f\x7f()<>@,;:\[\]={} \t\\"]')
_VALUE_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Exchange:
    """One request and its answer: the ASGI `receive` and `send` of a single call of the app."""

    __slots__ = (
        "body",
        "buffered",
        "chunked",
        "conn",
        "delivered",
        "disconnected",
        "done",
        "expect_continue",
        "held",
        "keep_alive",
        "more_body",
        "remaining",
        "scope",
        "started",
        "waiter",
    )

    def __init__(self, conn: Connection, scope: dict[str, Any], keep_alive: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.body: list[bytes] = []
        self.buffered = 0
        self.more_body = True
        self.delivered = False  # the app has had the whole body
        self.waiter: asyncio.Future[None] | None = None
        self.disconnected = False
        self.started = False
        self.done = False
        self.held: bytes | None = None  # status line and headers, sent with the first body bytes
        self.remaining = 0  # Content-Length bytes still to send
        self.chunked = False
        self.expect_continue = conn.expects

    # --- fed by the connection -----------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if self.done:
            return  # answered without reading it all: the rest is dropped as it arrives
        self.body.append(data)
        self.buffered += len(data)
        if self.buffered > HIGH_WATER and self is self.conn.current:
            self.conn.transport.pause_reading()
        self._wake()

    def complete(self) -> None:
        self.more_body = False
        self._wake()

    def disconnect(self) -> None:
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- the app's side -------------------------------------------------------------------------------
    async def run(self, app: Callable[..., Any]) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            if not self.done:
                self.conn.close()
            raise
        except Exception as exc:
            if self.disconnected:
                return
            log.error("the app failed on %s %s", self.scope["method"], self.scope["path"], exc_info=exc)
            if self.done:
                return
            if self.started:  # part of an answer is out: only closing tells the client it is broken
                self.conn.close()
                return
            self.keep_alive = False
            self.conn.write(plain(self.conn.shared.status_lines[500], "Internal Server Error"))
            self._finish()
            return
        if not self.done and not self.disconnected:
            log.error("the app returned without completing its response to %s", self.scope["path"])
            self.conn.close()

    async def receive(self) -> dict[str, Any]:
        while True:
            if self.disconnected:
                return {"type": "http.disconnect"}
            if not self.delivered:
                if self.body or not self.more_body:
                    body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
                    self.body = []
                    self.buffered = 0
                    more = self.more_body
                    if not more:
                        self.delivered = True
                    elif self.conn.current is self and not self.conn.waiting:
                        self.conn.transport.resume_reading()
                    return {"type": "http.request", "body": body, "more_body": more}
            elif self.done:  # the whole body was delivered and answered: nothing will come but the end
                return {"type": "http.disconnect"}
            if self.expect_continue:
                self.expect_continue = False
                if not self.started:
                    self.conn.write(_CONTINUE)
            self.waiter = self.conn.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

    async def send(self, message: dict[str, Any]) -> None:
        conn = self.conn
        if conn.write_paused:
            await conn.drain()
        if self.disconnected:
            return
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {kind!r}")
            self._start(message)
            return
        if self.done or kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if self.scope["method"] == "HEAD":
            out = b""
        elif self.chunked:
            out = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
            if not more:
                out += b"0\r\n\r\n"
        else:
            self.remaining -= len(body)
            if self.remaining < 0:
                raise RuntimeError("response body longer than its Content-Length")
            out = body
        held = self.held
        if held is not None:
            self.held = None
            if len(out) > HIGH_WATER:  # a large body is not copied to join it: two buffers, one writev
                conn.write_now((held, out))
                out = b""
            else:
                out = held + out
        if out:
            if len(out) > HIGH_WATER:
                conn.write_now((out,))  # at once: flow control must see it before the app sends more
            else:
                conn.write(out)
        if not more:
            if self.remaining:
                raise RuntimeError("response body shorter than its Content-Length")
            self._finish()

    def _start(self, message: dict[str, Any]) -> None:
        shared = self.conn.shared
        status = message["status"]
        head = [shared.status_lines.get(status) or b"HTTP/1.1 %d \r\n" % status, shared.date()]
        length: int | None = None
        closes = False  # the app sent its own `connection: close`
        for name, value in message.get("headers", ()):
            if name not in shared.good_names:
                if _NAME_BAD.search(name) or not name:
                    raise RuntimeError(f"invalid response header name {name[:40]!r}")
                if len(shared.good_names) < 256:  # names come from code, not clients: few, and bounded anyway
                    shared.good_names.add(name)
            if _VALUE_BAD.search(value):
                raise RuntimeError(f"invalid value of response header {name[:40]!r}")
            name = name.lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.chunked = True  # the app asked for chunks: framed here, the header sent once
            elif name == b"connection" and b"close" in value.lower():
                self.keep_alive = False
                closes = True
            head += (name, b": ", value, b"\r\n")
        if shared.closing:
            self.keep_alive = False
        if not self.keep_alive and not closes:
            head.append(b"connection: close\r\n")
        head_only = self.scope["method"] == "HEAD"
        if length is None and not head_only and not self.chunked and status not in (204, 304):
            self.chunked = True
            head.append(b"transfer-encoding: chunked\r\n")
        head.append(b"\r\n")
        self.remaining = 0 if head_only else length or 0
        self.started = True
        if shared.access_log:
            scope = self.scope
            access.info(
                '%s - "%s %s HTTP/%s" %d',
                scope["client"],
                scope["method"],
                scope["path"],
                scope["http_version"],
                status,
            )
        block = b"".join(head)
        if self.chunked:
            self.conn.write(block)  # a stream's headers leave with this turn's writes; its events may be far apart
        else:
            self.held = block

    def _finish(self) -> None:
        self.done = True
        self._wake()
        self.conn.finished(self)
