"""The payload logger's pipelined HTTP/1.1 client against small real servers on loopback with chosen behaviours."""

from __future__ import annotations

import asyncio

import pytest

from modelplane.server.log_sink import PipelinedPoster, SinkError


class Scripted:
    """Reads requests (content-length bodies) and answers each with `reply(index)`; `close_after` closes the
    connection after that many answers; records bodies and connections."""

    def __init__(self, reply, close_after=None, answer=True) -> None:
        self.reply, self.close_after, self.answer = reply, close_after, answer
        self.bodies: list[bytes] = []
        self.connections = 0

    async def handle(self, reader, writer) -> None:
        self.connections += 1
        answered = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                self.bodies.append(await reader.readexactly(length))
                if not self.answer:
                    continue
                writer.write(self.reply(len(self.bodies)))
                await writer.drain()
                answered += 1
                if self.close_after is not None and answered >= self.close_after:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()


async def serve(behaviour: Scripted) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(behaviour.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/events"


def requests(poster: PipelinedPoster, n: int) -> list[bytes]:
    return [poster.encode(f"ce-id: {i}\r\n".encode(), f"body-{i}".encode()) for i in range(n)]


def test_keep_alive_pipelines_a_batch_on_one_connection():
    async def scenario():
        sink = Scripted(lambda i: b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok")
        server, url = await serve(sink)
        poster = PipelinedPoster(url)
        assert await poster.post(requests(poster, 5)) == [202] * 5
        assert await poster.post(requests(poster, 2)) == [202] * 2
        await poster.close()
        server.close()
        assert sink.connections == 1 and sink.bodies[:5] == [f"body-{i}".encode() for i in range(5)]

    asyncio.run(scenario())


def test_a_sink_that_closes_after_each_answer_still_gets_every_event_once():
    async def scenario():
        sink = Scripted(lambda i: b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", close_after=1)
        server, url = await serve(sink)
        poster = PipelinedPoster(url)
        assert await poster.post(requests(poster, 4)) == [200] * 4
        await poster.close()
        server.close()
        answered = {b for b in sink.bodies}
        assert answered == {f"body-{i}".encode() for i in range(4)} and sink.connections == 4

    asyncio.run(scenario())


def test_chunked_answers_and_error_statuses_are_read():
    async def scenario():
        chunked = b"HTTP/1.1 500 Oops\r\ntransfer-encoding: chunked\r\n\r\n3\r\nbad\r\n0\r\n\r\n"
        sink = Scripted(lambda i: chunked if i == 2 else b"HTTP/1.1 204 No Content\r\n\r\n")
        server, url = await serve(sink)
        poster = PipelinedPoster(url)
        assert await poster.post(requests(poster, 3)) == [204, 500, 204]
        await poster.close()
        server.close()

    asyncio.run(scenario())


def test_a_sink_that_never_answers_times_out():
    async def scenario():
        sink = Scripted(lambda i: b"", answer=False)
        server, url = await serve(sink)
        poster = PipelinedPoster(url, timeout_s=0.2)
        with pytest.raises(TimeoutError):
            await poster.post(requests(poster, 2))
        await poster.close()
        server.close()

    asyncio.run(scenario())


def test_a_sink_that_hangs_up_without_answering_is_an_error():
    async def scenario():
        sink = Scripted(lambda i: b"", close_after=0)
        server, url = await serve(sink)
        poster = PipelinedPoster(url)
        with pytest.raises(SinkError):
            await poster.post(requests(poster, 2))
        server.close()

    asyncio.run(scenario())


def test_bad_urls_are_refused():
    with pytest.raises(ValueError):
        PipelinedPoster("ftp://example.com/x")
