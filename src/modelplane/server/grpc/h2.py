"""Server gRPC transport: one server-side HTTP/2 connection (RFC 9113) for request/response calls — frames,
SETTINGS, flow control and the limits that keep a hostile peer cheap; header blocks are decoded by `hpack`, and
what a finished request means is the handler's business (h2server.py)."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import hpack

from modelplane.server.grpc.h2frames import (
    ACK,
    COMPRESSION_ERROR,
    CONNECTION_WINDOW,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    FRAME_HEAD,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    INTERNAL_ERROR,
    MAX_FRAME,
    MAX_WINDOW,
    NO_ERROR,
    PADDED,
    PING,
    PREFACE,
    PRIORITY_FLAG,
    PROTOCOL_ERROR,
    PUSH_PROMISE,
    REFUSED_STREAM,
    RST_STREAM,
    SETTINGS,
    STREAM_WINDOW,
    U32,
    WINDOW_UPDATE,
    H2Limits,
    ProtocolViolation,
    Stream,
    frame,
    goaway,
)

log = logging.getLogger("modelplane.grpc")
Handler = Callable[["H2Connection", Stream], Awaitable[None]]


class H2Connection(asyncio.Protocol):
    """Reads frames, runs `handler(connection, stream)` as a task once a request is whole (or too big), and writes
    answers through `respond`. Any protocol error ends the connection with GOAWAY; nothing a peer sends makes us
    buffer more than `max_body` per request and `max_streams` requests."""

    def __init__(self, handler: Handler, limits: H2Limits, registry: set[H2Connection]) -> None:
        self.handler, self.limits, self.registry = handler, limits, registry
        self.transport: Any = None
        self.buf = bytearray()
        self.preface = False
        self.decoder = hpack.Decoder(max_header_list_size=limits.max_header_bytes)
        self.streams: dict[int, Stream] = {}
        self.last_stream = 0
        self.block: bytearray | None = None  # a header block awaiting CONTINUATION frames
        self.block_stream = self.block_flags = 0
        self.peer_window, self.peer_frame = 65_535, MAX_FRAME  # the peer's SETTINGS
        self.send_window = 65_535  # connection-level, for what we send
        self.recv_window = CONNECTION_WINDOW
        self.active = 0  # requests open or still being handled (a reset one counts until its handler ends)
        self.buffered = 0  # request bytes held; past 2 x max_body the connection's window is not refilled
        self.going_away = False
        self.failed = False  # a protocol error was answered: input is discarded until the close
        self.idle_timer: asyncio.TimerHandle | None = None
        self._window_changed = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self.closed = asyncio.Event()  # set once the connection is gone
        self._held: list[bytes] = []  # answers waiting for the end of this turn of the event loop (_emit)

    # --- asyncio.Protocol ------------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.registry.add(self)
        if 0 < self.limits.max_connections < len(self.registry):
            self._fail(ENHANCE_YOUR_CALM, "too many open connections; retry shortly")
            return
        settings = struct.pack(">HIHIHI", 3, self.limits.max_streams, 4, STREAM_WINDOW, 6, self.limits.max_header_bytes)
        update = U32.pack(CONNECTION_WINDOW - 65_535)
        transport.write(frame(SETTINGS, 0, 0, settings) + frame(WINDOW_UPDATE, 0, 0, update))
        self._arm_idle(self.limits.preface_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self.registry.discard(self)
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        for stream in self.streams.values():
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()
        self._window_changed.set()  # senders waiting for window see the stream is gone
        self._writable.set()
        self.closed.set()

    def pause_writing(self) -> None:  # the peer does not read: stop reading what would make us write more
        self._writable.clear()
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._writable.set()
        self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.failed:
            return
        buf = self.buf
        buf += data
        try:
            if not self.preface:
                if len(buf) < 24:
                    if not PREFACE.startswith(bytes(buf)):
                        raise ProtocolViolation(PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                    return
                if buf[:24] != PREFACE:
                    raise ProtocolViolation(PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                del buf[:24]
                self.preface = True
            pos, end = 0, len(buf)
            while end - pos >= 9:
                hi, lo, ftype, flags, sid = FRAME_HEAD.unpack_from(buf, pos)
                length = hi << 16 | lo
                if length > MAX_FRAME:
                    raise ProtocolViolation(FRAME_SIZE_ERROR, f"frame of {length} bytes; the limit is {MAX_FRAME}")
                if end - pos - 9 < length:
                    break
                payload = bytes(buf[pos + 9 : pos + 9 + length])
                pos += 9 + length
                self._frame(ftype, flags, sid & 0x7FFFFFFF, payload)
            del buf[:pos]
        except ProtocolViolation as exc:
            self._fail(exc.code, str(exc))
        except Exception:  # a bug of ours must not leave the connection half-parsed
            log.exception("HTTP/2 connection failed")
            self._fail(INTERNAL_ERROR, "internal error")

    def _fail(self, code: int, message: str) -> None:
        """GOAWAY, then end our side and discard what the peer still sends for a moment before closing: closing
        with unread input would reset the connection and could destroy the GOAWAY before the peer reads it."""
        self.failed = True
        self._flush()
        transport = self.transport
        transport.write(goaway(self.last_stream, code, message))
        if transport.can_write_eof():
            transport.write_eof()
            asyncio.get_running_loop().call_later(1.0, transport.close)
        else:
            transport.close()

    # --- frames ------------------------------------------------------------------------------------------
    def _frame(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        if self.block is not None and ftype != CONTINUATION:
            raise ProtocolViolation(PROTOCOL_ERROR, "a header block was interrupted by another frame")
        if ftype == DATA:
            self._data(flags, sid, payload)
        elif ftype == HEADERS:
            self._headers(flags, sid, payload)
        elif ftype == CONTINUATION:
            if self.block is None or sid != self.block_stream:
                raise ProtocolViolation(PROTOCOL_ERROR, "CONTINUATION without a header block to continue")
            self._add_block(payload, flags)
        elif ftype == SETTINGS:
            self._settings(flags, sid, payload)
        elif ftype == WINDOW_UPDATE:
            self._window_update(sid, payload)
        elif ftype == PING:
            if sid or len(payload) != 8:
                raise ProtocolViolation(FRAME_SIZE_ERROR if len(payload) != 8 else PROTOCOL_ERROR, "bad PING")
            if not flags & ACK:
                self.transport.write(frame(PING, ACK, 0, payload))
        elif ftype == RST_STREAM:
            if not sid or len(payload) != 4:
                raise ProtocolViolation(PROTOCOL_ERROR, "bad RST_STREAM")
            stream = self.streams.get(sid)
            if stream is not None:
                self._drop(stream)
                if stream.task is not None:
                    stream.task.cancel()
        elif ftype == GOAWAY:
            self.going_away = True
            self._close_if_done()
        elif ftype == PUSH_PROMISE:
            raise ProtocolViolation(PROTOCOL_ERROR, "a client cannot push")
        # PRIORITY and unknown frame types are ignored, as RFC 9113 asks

    def _headers(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid or not sid & 1:
            raise ProtocolViolation(PROTOCOL_ERROR, "HEADERS on an invalid stream id")
        start, end = 0, len(payload)
        if flags & PADDED:
            if not payload or payload[0] >= len(payload):
                raise ProtocolViolation(PROTOCOL_ERROR, "padding longer than the frame")
            start, end = 1, len(payload) - payload[0]
        if flags & PRIORITY_FLAG:
            start += 5
        if start > end:
            raise ProtocolViolation(FRAME_SIZE_ERROR, "HEADERS frame too short")
        self.block, self.block_stream, self.block_flags = bytearray(), sid, flags
        self._add_block(payload[start:end], flags)

    def _add_block(self, fragment: bytes, flags: int) -> None:
        block = self.block
        assert block is not None
        block += fragment
        if len(block) > self.limits.max_header_bytes:
            raise ProtocolViolation(ENHANCE_YOUR_CALM, "header block too large")
        if flags & END_HEADERS:
            self.block = None
            try:  # always decoded, even for a refused stream: the peer's compression table depends on it
                headers = self.decoder.decode(bytes(block), raw=True)
            except Exception as exc:  # hpack's own errors, or anything its parser trips over on hostile bytes
                raise ProtocolViolation(COMPRESSION_ERROR, f"cannot decode the header block: {exc}") from None
            self._request(self.block_stream, headers, bool(self.block_flags & END_STREAM))

    def _request(self, sid: int, headers: list[tuple[bytes, bytes]], ended: bool) -> None:
        stream = self.streams.get(sid)
        if stream is not None:  # trailers after the body: a request's end
            if not ended or stream.remote_closed:
                raise ProtocolViolation(PROTOCOL_ERROR, "a second header block must end the stream")
            self._ended(stream)
            return
        if sid <= self.last_stream:
            return  # a stream we answered early, refused or saw reset: what was in flight is dropped (RFC 9113 5.1)
        self.last_stream = sid
        if self.going_away or self.active >= self.limits.max_streams:
            self.transport.write(frame(RST_STREAM, 0, sid, U32.pack(REFUSED_STREAM)))
            return
        stream = self.streams[sid] = Stream(sid, headers, self.peer_window)
        self.active += 1
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if ended:
            self._ended(stream)

    def _data(self, flags: int, sid: int, payload: bytes) -> None:
        length = len(payload)
        self.recv_window -= length
        if self.recv_window < 0:
            raise ProtocolViolation(FLOW_CONTROL_ERROR, "DATA beyond the connection's window")
        self._refill()
        stream = self.streams.get(sid)
        if stream is None or stream.remote_closed:
            if not sid or sid > self.last_stream:
                raise ProtocolViolation(PROTOCOL_ERROR, "DATA on a stream that was never opened")
            return  # a stream we answered early or refused: what was in flight is dropped
        if flags & PADDED:
            if not payload or payload[0] >= length:
                raise ProtocolViolation(PROTOCOL_ERROR, "padding longer than the frame")
            payload = payload[1 : length - payload[0]]
        stream.recv_window -= length
        if stream.recv_window < 0:
            raise ProtocolViolation(FLOW_CONTROL_ERROR, "DATA beyond the stream's window")
        if not stream.overflow:
            if stream.size + len(payload) > self.limits.max_body:
                self.buffered -= stream.size
                stream.overflow, stream.chunks, stream.size = True, [], 0
                self._start(stream)  # answered now; the rest of the body is dropped
            elif payload:
                stream.chunks.append(payload)
                stream.size += len(payload)
                self.buffered += len(payload)
        if flags & END_STREAM:
            self._ended(stream)
        elif stream.recv_window < STREAM_WINDOW // 2 and not stream.overflow:  # no more for a body we drop
            self.transport.write(frame(WINDOW_UPDATE, 0, sid, U32.pack(STREAM_WINDOW - stream.recv_window)))
            stream.recv_window = STREAM_WINDOW

    def _settings(self, flags: int, sid: int, payload: bytes) -> None:
        if sid:
            raise ProtocolViolation(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise ProtocolViolation(FRAME_SIZE_ERROR, "SETTINGS acknowledgement with a payload")
            return
        if len(payload) % 6:
            raise ProtocolViolation(FRAME_SIZE_ERROR, "SETTINGS payload not a multiple of 6")
        for i in range(0, len(payload), 6):
            key, value = struct.unpack_from(">HI", payload, i)
            if key == 4:  # INITIAL_WINDOW_SIZE: applies to every open stream
                if value > MAX_WINDOW:
                    raise ProtocolViolation(FLOW_CONTROL_ERROR, "initial window too large")
                for stream in self.streams.values():
                    stream.send_window += value - self.peer_window
                self.peer_window = value
            elif key == 5:
                if not MAX_FRAME <= value <= 16_777_215:
                    raise ProtocolViolation(PROTOCOL_ERROR, "invalid SETTINGS_MAX_FRAME_SIZE")
                self.peer_frame = value
        self.transport.write(frame(SETTINGS, ACK, 0))
        self._wake_senders()

    def _window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ProtocolViolation(FRAME_SIZE_ERROR, "WINDOW_UPDATE of the wrong size")
        increment = U32.unpack(payload)[0] & 0x7FFFFFFF
        if sid == 0:
            if not increment or self.send_window + increment > MAX_WINDOW:
                raise ProtocolViolation(FLOW_CONTROL_ERROR, "invalid connection window update")
            self.send_window += increment
        elif (stream := self.streams.get(sid)) is not None:
            if not increment or stream.send_window + increment > MAX_WINDOW:
                self._reset(stream, FLOW_CONTROL_ERROR)
                return
            stream.send_window += increment
        self._wake_senders()

    # --- streams -----------------------------------------------------------------------------------------
    def _ended(self, stream: Stream) -> None:
        stream.remote_closed = True
        if stream.task is None:
            self._start(stream)

    def _start(self, stream: Stream) -> None:
        stream.task = asyncio.get_running_loop().create_task(self.handler(self, stream))
        stream.task.add_done_callback(lambda task: self._finished(stream, task))

    def _finished(self, stream: Stream, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("HTTP/2 request handler failed", exc_info=exc)
        if self.streams.get(stream.id) is stream:
            self._reset(stream, INTERNAL_ERROR)  # the handler ended without answering: never leave a client waiting
        self._release(stream)

    def _drop(self, stream: Stream) -> None:
        """The stream is over for the peer; one whose handler never started is over for us too (a reset one whose
        handler runs counts until the handler ends: the rapid-reset defence)."""
        if self.streams.pop(stream.id, None) is stream and stream.task is None:
            self._release(stream)

    def _release(self, stream: Stream) -> None:
        """The stream no longer counts against the limits: answered, or over with no handler left running."""
        if stream.counted:
            stream.counted = False
            self.active -= 1
            self.buffered -= stream.size
            stream.chunks, stream.size = [], 0
            self._refill()
            self._close_if_done()

    def _reset(self, stream: Stream, code: int) -> None:
        self._drop(stream)
        if not self.transport.is_closing():
            self.transport.write(frame(RST_STREAM, 0, stream.id, U32.pack(code)))

    def _refill(self) -> None:
        """Grant the peer more connection window once half is used, unless requests already hold too much."""
        if self.recv_window < CONNECTION_WINDOW // 2 and self.buffered < 2 * self.limits.max_body:
            if not self.transport.is_closing():
                self.transport.write(frame(WINDOW_UPDATE, 0, 0, U32.pack(CONNECTION_WINDOW - self.recv_window)))
            self.recv_window = CONNECTION_WINDOW

    def _close_if_done(self) -> None:
        if self.active:
            return
        if self.going_away:
            self._flush()
            self.transport.close()
        else:
            self._arm_idle()

    def _arm_idle(self, delay: float | None = None) -> None:
        delay = self.limits.idle_s if delay is None else delay
        if self.idle_timer is None and delay > 0:
            self.idle_timer = asyncio.get_running_loop().call_later(delay, self.shut_down)

    def shut_down(self) -> None:
        """Refuse new requests (GOAWAY) and close once those in flight are answered."""
        self.idle_timer = None
        if not self.transport.is_closing():
            self.transport.write(goaway(self.last_stream, NO_ERROR))
        self.going_away = True
        self._close_if_done()

    def _wake_senders(self) -> None:
        self._window_changed.set()
        self._window_changed = asyncio.Event()

    # --- answers -----------------------------------------------------------------------------------------
    async def respond(self, stream: Stream, head: bytes, body: bytes, trailers: bytes) -> None:
        """Send an answer: `head` and `trailers` are encoded header blocks (no dynamic table, each under 16 KiB),
        `body` the DATA, sent as the peer's windows allow. With an empty `body`, `head` and `trailers` go as one
        block that ends the stream (gRPC's trailers-only answer, or a bare HTTP status)."""
        if self.streams.get(stream.id) is not stream or self.transport.is_closing():
            return  # reset by the peer, or the connection is gone
        sid, n = stream.id, len(body)
        if not n:
            self._emit(frame(HEADERS, END_HEADERS | END_STREAM, sid, head + trailers))
        elif n <= stream.send_window and n <= self.send_window and n <= self.peer_frame and self._writable.is_set():
            stream.send_window -= n
            self.send_window -= n
            self._emit(
                frame(HEADERS, END_HEADERS, sid, head)
                + frame(DATA, 0, sid, body)
                + frame(HEADERS, END_HEADERS | END_STREAM, sid, trailers)
            )
        else:
            self._flush()
            self.transport.write(frame(HEADERS, END_HEADERS, sid, head))
            if not await self._send_data(stream, memoryview(body)):
                return
            self.transport.write(frame(HEADERS, END_HEADERS | END_STREAM, sid, trailers))
        self.streams.pop(sid, None)
        if not stream.remote_closed:  # answered before the body ended (too large): the peer can stop sending
            self._emit(frame(RST_STREAM, 0, sid, U32.pack(NO_ERROR)))
        self._release(stream)  # now, not when the task's done callback runs: the peer may already have sent more

    def _emit(self, data: bytes) -> None:
        """Write an answer; while other requests of the connection are in flight, hold it until the end of this
        turn of the event loop, so that answers computed in one turn leave in one write: on loopback each write also
        runs the reader's side and wakes it, and a client woken once for sixteen answers costs far less."""
        if self.active <= 1 and not self._held:
            self.transport.write(data)
            return
        self._held.append(data)
        if len(self._held) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        if self._held:
            held, self._held = self._held, []
            if not self.transport.is_closing():
                self.transport.write(b"".join(held))

    async def _send_data(self, stream: Stream, view: memoryview) -> bool:
        while view:
            await self._writable.wait()
            allowed = min(stream.send_window, self.send_window, self.peer_frame, len(view))
            if self.streams.get(stream.id) is not stream or self.transport.is_closing():
                return False
            if allowed <= 0:
                await self._window_changed.wait()
                continue
            stream.send_window -= allowed
            self.send_window -= allowed
            self.transport.write(frame(DATA, 0, stream.id, bytes(view[:allowed])))
            view = view[allowed:]
        return True
