"""modelplane's HTTP/2 connection (server/grpc/h2.py) on loopback, driven by raw frames: a request and its answer,
SETTINGS and PING, flow control both ways, and what a hostile peer gets — a bad preface, oversized frames, header
floods, bad compression, too many or reset streams, bodies past the limit."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import hpack

from modelplane.server.grpc import h2frames as h2
from modelplane.server.grpc.h2 import H2Connection
from modelplane.server.grpc.h2frames import H2Limits, Stream

Handler = Callable[[H2Connection, Stream], Awaitable[None]]
HEAD = b"\x88"  # :status 200


async def echo(conn: H2Connection, stream: Stream) -> None:
    await conn.respond(stream, HEAD, b"got:" + stream.body(), b"\x00\x04done\x03yes")


@contextlib.asynccontextmanager
async def serving(handler: Handler = echo, **limits: Any) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    conns: set[H2Connection] = set()
    server = await loop.create_server(lambda: H2Connection(handler, H2Limits(**limits), conns), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for conn in list(conns):
            conn.transport.close()
        await server.wait_closed()


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()

    @classmethod
    async def connect(cls, port: int, settings: bytes = b"") -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(h2.PREFACE + h2.frame(h2.SETTINGS, 0, 0, settings))
        return cls(reader, writer)

    def send(self, ftype: int, flags: int, sid: int, payload: bytes = b"") -> None:
        self.writer.write(h2.frame(ftype, flags, sid, payload))

    def request(self, sid: int, body: bytes | None = b"hi", path: bytes = b"/x") -> None:
        block = self.encoder.encode([(b":method", b"POST"), (b":scheme", b"http"), (b":path", path)])
        self.send(h2.HEADERS, h2.END_HEADERS | (h2.END_STREAM if body is None else 0), sid, block)
        if body is not None:
            self.send(h2.DATA, h2.END_STREAM, sid, body)

    async def frame(self) -> tuple[int, int, int, bytes]:
        head = await asyncio.wait_for(self.reader.readexactly(9), 5)
        hi, lo, ftype, flags, sid = struct.unpack(">BHBBI", head)
        payload = await self.reader.readexactly(hi << 16 | lo)
        return ftype, flags, sid, payload

    async def until(self, ftype: int, sid: int | None = None) -> tuple[int, int, int, bytes]:
        """The next frame of `ftype` (on `sid`), skipping the rest."""
        while True:
            got = await self.frame()
            if got[0] == ftype and (sid is None or got[2] == sid):
                return got

    async def answer(self, sid: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """A whole answer on `sid`: its DATA and its trailers."""
        data = b""
        while True:
            ftype, flags, got, payload = await self.frame()
            if got != sid:
                continue
            if ftype == h2.DATA:
                data += payload
            elif ftype == h2.HEADERS and flags & h2.END_STREAM:
                return data, self.decoder.decode(payload, raw=True)
            elif ftype == h2.HEADERS:
                self.decoder.decode(payload, raw=True)

    async def goaway(self) -> int:
        payload = (await self.until(h2.GOAWAY))[3]
        return struct.unpack(">I", payload[4:8])[0]


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_a_request_gets_its_answer_and_settings_and_pings_are_acknowledged():
    async def main() -> None:
        async with serving() as port:
            client = await Client.connect(port)
            ftype, flags, _, settings = await client.frame()
            assert ftype == h2.SETTINGS and not flags & h2.ACK and len(settings) % 6 == 0
            client.send(h2.PING, 0, 0, b"12345678")
            assert (await client.until(h2.PING))[1:] == (h2.ACK, 0, b"12345678")
            client.request(1, b"hello")
            client.request(3, None)  # no body at all
            assert await client.answer(1) == (b"got:hello", [(b"done", b"yes")])
            assert (await client.answer(3))[0] == b"got:"

    run(main())


def test_a_bad_preface_ends_the_connection():
    async def main() -> None:
        async with serving() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            client = Client(reader, writer)
            assert await client.goaway() == h2.PROTOCOL_ERROR
            assert await reader.read() == b""

    run(main())


def test_an_oversized_frame_is_refused_from_its_header_alone():
    async def main() -> None:
        async with serving() as port:
            client = await Client.connect(port)
            client.writer.write(struct.pack(">BHBBI", 0x10, 0, h2.DATA, 0, 1))  # announces 1 MiB, sends none
            assert await client.goaway() == h2.FRAME_SIZE_ERROR

    run(main())


def test_a_continuation_flood_is_cut_off_at_the_header_limit():
    async def main() -> None:
        async with serving(max_header_bytes=4096) as port:
            client = await Client.connect(port)
            client.send(h2.HEADERS, 0, 1, b"\x00")  # no END_HEADERS: a block that never ends
            for _ in range(10):
                client.send(h2.CONTINUATION, 0, 1, b"\x00" * 1000)
            assert await client.goaway() == h2.ENHANCE_YOUR_CALM

    run(main())


def test_undecodable_headers_end_the_connection():
    async def main() -> None:
        async with serving() as port:
            client = await Client.connect(port)
            client.send(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, b"\xff\xff\xff\xff\xff")  # index past any table
            assert await client.goaway() == h2.COMPRESSION_ERROR

    run(main())


def test_data_on_a_stream_never_opened_is_a_protocol_error():
    async def main() -> None:
        async with serving() as port:
            client = await Client.connect(port)
            client.send(h2.DATA, h2.END_STREAM, 7, b"x")
            assert await client.goaway() == h2.PROTOCOL_ERROR

    run(main())


def test_streams_past_the_limit_are_refused_and_reset_ones_count_until_their_handler_ends():
    started: list[int] = []

    async def main() -> None:
        gate, both = asyncio.Event(), asyncio.Event()

        async def slow(conn: H2Connection, stream: Stream) -> None:
            started.append(stream.id)
            await gate.wait()
            await echo(conn, stream)

        async def stubborn(conn: H2Connection, stream: Stream) -> None:  # ignores cancellation once: still counts
            started.append(stream.id)
            if len(started) == 2:
                both.set()
            try:
                await gate.wait()
            except asyncio.CancelledError:
                await gate.wait()

        async with serving(slow, max_streams=2) as port:
            client = await Client.connect(port)
            client.request(1)
            client.request(3)
            client.request(5)  # a third while two are in flight
            _, _, sid, payload = await client.until(h2.RST_STREAM)
            assert (sid, struct.unpack(">I", payload)[0]) == (5, h2.REFUSED_STREAM)
            gate.set()
            assert (await client.answer(1))[0] == b"got:hi" and (await client.answer(3))[0] == b"got:hi"
            client.request(7)  # room again
            assert (await client.answer(7))[0] == b"got:hi"
        gate.clear()
        started.clear()
        async with serving(stubborn, max_streams=2) as port:
            client = await Client.connect(port)
            for sid in (1, 3):
                client.request(sid)
            await asyncio.wait_for(both.wait(), 5)
            for sid in (1, 3):  # a rapid reset: the handlers are told to stop, but still run
                client.send(h2.RST_STREAM, 0, sid, struct.pack(">I", 8))
            client.request(5)
            _, _, sid, payload = await client.until(h2.RST_STREAM)
            assert (sid, struct.unpack(">I", payload)[0]) == (5, h2.REFUSED_STREAM)
            gate.set()

    run(main())


def test_an_answer_larger_than_the_peers_window_waits_for_window_updates():
    async def main() -> None:
        async def big(conn: H2Connection, stream: Stream) -> None:
            await conn.respond(stream, HEAD, b"x" * 25, b"\x00\x01a\x01b")

        async with serving(big) as port:
            client = await Client.connect(port, struct.pack(">HI", 4, 10))  # INITIAL_WINDOW_SIZE 10
            client.request(1)
            chunks = []
            while sum(chunks) < 25:
                _, _, _, payload = await client.until(h2.DATA, 1)
                chunks.append(len(payload))
                client.send(h2.WINDOW_UPDATE, 0, 1, struct.pack(">I", len(payload)))
            assert chunks == [10, 10, 5]
            assert (await client.until(h2.HEADERS, 1))[1] & h2.END_STREAM

    run(main())


def test_a_body_past_the_limit_is_answered_at_once_and_the_rest_refused():
    async def main() -> None:
        seen: list[tuple[bool, int]] = []

        async def guarded(conn: H2Connection, stream: Stream) -> None:
            seen.append((stream.overflow, stream.size))
            await conn.respond(stream, HEAD, b"", b"\x00\x04done\x07too-big")

        async with serving(guarded, max_body=100) as port:
            client = await Client.connect(port)
            block = client.encoder.encode([(b":method", b"POST"), (b":path", b"/x")])
            client.send(h2.HEADERS, h2.END_HEADERS, 1, block)
            client.send(h2.DATA, 0, 1, b"y" * 60)
            client.send(h2.DATA, 0, 1, b"y" * 60)  # past 100: no END_STREAM yet
            _, flags, _, trailers = await client.until(h2.HEADERS, 1)
            assert flags & h2.END_STREAM and client.decoder.decode(trailers, raw=True) == [
                (b":status", b"200"),
                (b"done", b"too-big"),
            ]
            _, _, _, payload = await client.until(h2.RST_STREAM, 1)
            assert struct.unpack(">I", payload)[0] == h2.NO_ERROR
            client.send(h2.DATA, h2.END_STREAM, 1, b"late")  # in flight when we reset: dropped, not an error
            client.request(3, b"after")
            await client.until(h2.HEADERS, 3)
            assert seen == [(True, 0), (False, 5)]

    run(main())


def test_a_handler_that_ends_without_answering_resets_its_stream():
    async def main() -> None:
        async def silent(conn: H2Connection, stream: Stream) -> None:
            raise RuntimeError("boom")

        async with serving(silent) as port:
            client = await Client.connect(port)
            client.request(1)
            _, _, _, payload = await client.until(h2.RST_STREAM, 1)
            assert struct.unpack(">I", payload)[0] == h2.INTERNAL_ERROR

    run(main())


def test_an_idle_connection_is_sent_away():
    async def main() -> None:
        async with serving(idle_s=0.2) as port:
            client = await Client.connect(port)
            client.request(1)
            await client.answer(1)
            assert await client.goaway() == h2.NO_ERROR
            assert await asyncio.wait_for(client.reader.read(), 5) == b""

    run(main())


def test_an_answered_stream_frees_its_slot_at_once():
    """With many streams in flight the peer reads an answer and sends the next request before the answered
    handler's task has finished; that request must not be refused as one too many (h2load -m64 saw 25% refused)."""

    class Transport:
        def __init__(self) -> None:
            self.out = bytearray()

        def write(self, data: bytes) -> None:
            self.out += data

        def is_closing(self) -> bool:
            return False

        def close(self) -> None:
            pass

    async def main() -> None:
        encoder = hpack.Encoder()

        def request(sid: int) -> bytes:
            block = encoder.encode([(b":method", b"POST"), (b":path", b"/x")])
            return h2.frame(h2.HEADERS, h2.END_HEADERS, sid, block) + h2.frame(h2.DATA, h2.END_STREAM, sid, b"x")

        async def answer_then_peer_sends_more(conn: H2Connection, stream: Stream) -> None:
            await echo(conn, stream)
            if stream.id == 1:
                conn.data_received(request(3))  # arrives while this task is still running

        transport = Transport()
        conn = H2Connection(answer_then_peer_sends_more, H2Limits(max_streams=1), set())
        conn.connection_made(transport)
        conn.data_received(h2.PREFACE + h2.frame(h2.SETTINGS, 0, 0) + request(1))
        for _ in range(10):
            await asyncio.sleep(0)
        frames, data = [], bytes(transport.out)
        while data:
            n = int.from_bytes(data[:3], "big")
            frames.append((data[3], data[5:9], data[9 : 9 + n]))
            data = data[9 + n :]
        assert not [f for f in frames if f[0] == h2.RST_STREAM]
        assert [int.from_bytes(sid, "big") for t, sid, p in frames if t == h2.DATA] == [1, 3]

    run(main())
