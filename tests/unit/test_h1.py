"""modelplane's HTTP/1.1 server (server/rest/h1.py, listener.py) on loopback, driven by raw sockets: keep-alive,
pipelining, chunked bodies both ways, 100-continue, HEAD, the limits (connections, header size, header deadline,
idle keep-alive), malformed and hostile requests, app failures, client disconnects and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from modelplane.server.rest.limits import ConnectionLimits
from modelplane.server.rest.listener import HttpServer

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the method, path, query and the body it read, as a fixed-length response."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    out = b"%s %s?%s %d:" % (scope["method"].encode(), scope["path"].encode(), scope["query_string"], len(body)) + body
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(out)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": out})


@contextlib.asynccontextmanager
async def serving(app: App = echo, **limits: Any) -> AsyncIterator[HttpServer]:
    server = HttpServer(app, ConnectionLimits(**limits))
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.shutdown(1.0)


async def connect(server: HttpServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.ports[0])


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One response: status line, headers (lower-cased names), body (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = dict(line.split(b": ", 1) for line in lines[1:] if line)
    headers = {k.lower(): v for k, v in headers.items()}
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = b""
    return lines[0], headers, body


async def closed(reader: asyncio.StreamReader) -> bool:
    """True once the server closed the connection (EOF or reset)."""
    try:
        return await asyncio.wait_for(reader.read(1), 10) == b""
    except ConnectionResetError:
        return True


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def test_keep_alive_answers_several_requests_on_one_connection() -> None:
    async def main() -> list[Any]:
        async with serving() as server:
            reader, writer = await connect(server)
            answers = []
            for i in range(3):
                writer.write(b"POST /v2/models/m/infer?i=%d HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" % i)
                answers.append(await read_response(reader))
            writer.close()
            return answers

    answers = run(main())
    for i, (status, headers, body) in enumerate(answers):
        assert status == b"HTTP/1.1 200 OK"
        assert b"date" in headers and headers[b"content-type"] == b"text/plain"
        assert body == b"POST /v2/models/m/infer?i=%d 3:abc" % i


def test_pipelined_requests_are_answered_in_order() -> None:
    async def slow_first(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            await asyncio.sleep(0.2)  # the second request is parsed meanwhile and must wait its turn
        await echo(scope, receive, send)

    async def main() -> list[bytes]:
        async with serving(slow_first) as server:
            reader, writer = await connect(server)
            writer.write(
                b"POST /slow HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\nA"
                b"POST /fast HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nBB"
                b"GET /last HTTP/1.1\r\nhost: x\r\n\r\n"
            )
            bodies = [(await read_response(reader))[2] for _ in range(3)]
            writer.close()
            return bodies

    assert run(main()) == [b"POST /slow? 1:A", b"POST /fast? 2:BB", b"GET /last? 0:"]


@pytest.mark.parametrize(
    ("request_head", "closes"),
    [
        (b"GET / HTTP/1.0\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n", True),
        (b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n", True),  # 1.0 always closes here
        (b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", False),
    ],
)
def test_connection_close_follows_the_request(request_head: bytes, closes: bool) -> None:
    async def main() -> tuple[bytes, bool]:
        async with serving() as server:
            reader, writer = await connect(server)
            writer.write(request_head)
            status, headers, _ = await read_response(reader)
            if not closes:
                assert b"connection" not in headers
                writer.write(b"GET /again HTTP/1.1\r\nhost: x\r\n\r\n")
                assert (await read_response(reader))[2] == b"GET /again? 0:"
                writer.close()
                return status, False
            assert headers[b"connection"] == b"close"
            return status, await closed(reader)

    assert run(main()) == (b"HTTP/1.1 200 OK", closes)


def test_a_chunked_request_body_reaches_the_app_whole_and_a_large_one_intact() -> None:
    big = bytes(range(256)) * 20_000  # 5 MB: reading pauses and resumes as the app takes the body

    async def main() -> tuple[bytes, bytes]:
        async with serving() as server:
            reader, writer = await connect(server)
            writer.write(b"POST /c HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
            for part in (b"hello ", b"chunked ", b"world"):
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            small = (await read_response(reader))[2]
            writer.write(b"POST /big HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % len(big))
            writer.write(big)
            large = (await read_response(reader))[2]
            writer.close()
            return small, large

    small, large = run(main())
    assert small == b"POST /c? 19:hello chunked world"
    assert large == b"POST /big? %d:" % len(big) + big


def test_expect_100_continue_is_answered_before_the_body_is_sent() -> None:
    async def main() -> tuple[bytes, bytes]:
        async with serving() as server:
            reader, writer = await connect(server)
            writer.write(b"POST /e HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n")
            interim = await reader.readuntil(b"\r\n\r\n")
            writer.write(b"data")
            body = (await read_response(reader))[2]
            writer.close()
            return interim, body

    assert run(main()) == (b"HTTP/1.1 100 Continue\r\n\r\n", b"POST /e? 4:data")


def test_head_answers_headers_only_and_the_connection_stays_usable() -> None:
    async def main() -> tuple[dict[bytes, bytes], bytes]:
        async with serving() as server:
            reader, writer = await connect(server)
            writer.write(b"HEAD /h HTTP/1.1\r\nhost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if line)
            writer.write(b"GET /next HTTP/1.1\r\nhost: x\r\n\r\n")  # no body bytes were sent for the HEAD
            body = (await read_response(reader))[2]
            writer.close()
            return headers, body

    headers, body = run(main())
    assert headers[b"content-length"] == str(len(b"HEAD /h? 0:")).encode()
    assert body == b"GET /next? 0:"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"GET / HTTP/1.1\r\nbad header line\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"GET /\xff\xfe HTTP/1.1\r\nhost: x\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"GET / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab", b"HTTP/1.1 400 Bad Request"),
        (
            b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 70_000 + b"\r\n\r\n",
            b"HTTP/1.1 431 Request Header Fields Too Large",
        ),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", b"HTTP/1.1 431 Request Header Fields Too Large"),
    ],
    ids=["garbage", "bad-header", "non-ascii-target", "two-lengths", "huge-header", "huge-target"],
)
def test_malformed_and_oversized_requests_are_refused_and_the_connection_closed(raw: bytes, status: bytes) -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await echo(scope, receive, send)

    async def main() -> tuple[bytes, bool]:
        async with serving(app) as server:
            reader, writer = await connect(server)
            writer.write(raw)
            first, _, body = await read_response(reader)
            assert body
            return first, await closed(reader)

    assert run(main()) == (status, True)
    assert seen == []  # the app never saw any of them


def test_app_failures_answer_500_before_the_response_and_close_after_it_started() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        if scope["path"] == "/late":
            headers = [(b"content-length", b"10")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"12345", "more_body": True})
        if scope["path"] == "/inject":
            bad = [(b"x-evil", b"a\r\nset-cookie: stolen=1")]
            await send({"type": "http.response.start", "status": 200, "headers": bad})
        raise ValueError("boom")

    async def main() -> tuple[bytes, bytes, bytes]:
        async with serving(app) as server:
            reader, writer = await connect(server)
            writer.write(b"GET /early HTTP/1.1\r\nhost: x\r\n\r\n")
            early, _, _ = await read_response(reader)
            assert await closed(reader)
            reader, writer = await connect(server)
            writer.write(b"GET /inject HTTP/1.1\r\nhost: x\r\n\r\n")
            injected = await reader.read(4096)
            reader, writer = await connect(server)
            writer.write(b"GET /late HTTP/1.1\r\nhost: x\r\n\r\n")
            late = await reader.read(4096)
            assert await closed(reader)
            return early, injected, late

    early, injected, late = run(main())
    assert early == b"HTTP/1.1 500 Internal Server Error"
    assert injected.startswith(b"HTTP/1.1 500") and b"set-cookie" not in injected  # never written as a header
    assert late.startswith(b"HTTP/1.1 200 OK") and late.endswith(b"\r\n\r\n12345")  # 5 of 10 bytes, then closed


def test_a_stream_without_a_length_is_chunked_and_its_first_bytes_leave_before_it_ends() -> None:
    release = asyncio.Event

    async def main() -> tuple[bytes, bytes]:
        go = release()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
            )
            await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
            await go.wait()
            await send({"type": "http.response.body", "body": b"data: 2\n\n"})

        async with serving(app) as server:
            reader, writer = await connect(server)
            writer.write(b"GET /s HTTP/1.1\r\nhost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            first = await reader.readuntil(b"\n\n\r\n")  # the first event, while the app still waits
            go.set()
            rest = await reader.readuntil(b"0\r\n\r\n")
            writer.close()
            assert b"transfer-encoding: chunked" in head
            return first, rest

    first, rest = run(main())
    assert first == b"9\r\ndata: 1\n\n\r\n"
    assert rest == b"9\r\ndata: 2\n\n\r\n0\r\n\r\n"


def test_the_app_learns_that_its_client_left() -> None:
    async def main() -> list[str]:
        events: list[str] = []
        left = asyncio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            events.append((await receive())["type"])
            events.append((await receive())["type"])  # blocks until the client goes
            left.set()

        async with serving(app) as server:
            _, writer = await connect(server)
            writer.write(b"GET /wait HTTP/1.1\r\nhost: x\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.close()
            await asyncio.wait_for(left.wait(), 10)
        return events

    assert run(main()) == ["http.request", "http.disconnect"]


def test_connections_past_the_cap_get_503_and_idle_ones_are_closed_by_the_deadlines() -> None:
    async def main() -> tuple[bytes, bool, bool, bytes]:
        async with serving(max_connections=2, header_timeout_s=0.3, keep_alive_s=0.3) as server:
            silent, _ = await connect(server)  # never sends a request: the header deadline closes it
            idle, idle_writer = await connect(server)
            idle_writer.write(b"GET /once HTTP/1.1\r\nhost: x\r\n\r\n")
            await read_response(idle)  # answered, then idle: the keep-alive deadline closes it
            extra, _ = await connect(server)
            busy = await extra.read(4096)
            silent_closed = await closed(silent)
            idle_closed = await closed(idle)
            reader, writer = await connect(server)  # room again
            writer.write(b"GET /after HTTP/1.1\r\nhost: x\r\n\r\n")
            after = (await read_response(reader))[2]
            writer.close()
            return busy, silent_closed, idle_closed, after

    busy, silent_closed, idle_closed, after = run(main())
    assert busy.startswith(b"HTTP/1.1 503") and b"too many open connections" in busy
    assert silent_closed and idle_closed
    assert after == b"GET /after? 0:"


def test_headers_sent_a_byte_at_a_time_hit_the_deadline() -> None:
    async def main() -> bool:
        async with serving(header_timeout_s=0.3) as server:
            reader, writer = await connect(server)
            writer.write(b"GET / HTTP/1.1\r\n")
            for _ in range(200):
                if reader.at_eof():
                    return True
                with contextlib.suppress(ConnectionError):
                    writer.write(b"X")
                    await writer.drain()
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(reader.read(1), 0.05) == b"":
                        return True
            return False

    assert run(main())


def test_shutdown_lets_the_request_in_flight_finish_and_refuses_new_connections() -> None:
    async def main() -> tuple[bytes, bool]:
        started = asyncio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            started.set()
            await asyncio.sleep(0.3)
            await echo(scope, receive, send)

        server = HttpServer(app, ConnectionLimits())
        await server.start("127.0.0.1", 0)
        reader, writer = await connect(server)
        writer.write(b"GET /inflight HTTP/1.1\r\nhost: x\r\n\r\n")
        await started.wait()
        stopping = asyncio.ensure_future(server.shutdown(10))
        await asyncio.sleep(0.05)
        refused = False
        try:
            await connect(server)
        except OSError:
            refused = True
        _, headers, body = await read_response(reader)
        await stopping
        assert headers[b"connection"] == b"close"
        return body, refused

    assert run(main()) == (b"GET /inflight? 0:", True)


def test_an_app_that_asks_for_chunks_gets_them_framed_once() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"transfer-encoding", b"chunked"), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"type":"ADDED"}\n', "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def main() -> tuple[bytes, bytes]:
        async with serving(app) as server:
            reader, writer = await connect(server)
            writer.write(b"GET /watch HTTP/1.1\r\nhost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readuntil(b"0\r\n\r\n")
            writer.close()
            return head, body

    head, body = run(main())
    assert head.lower().count(b"transfer-encoding") == 1
    assert body == b'11\r\n{"type":"ADDED"}\n\r\n0\r\n\r\n'


def test_an_answer_sent_before_the_body_is_read_leaves_the_connection_usable() -> None:
    big = b"x" * (1 << 20)  # far past the high-water mark: reading pauses while the app ignores the body

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/refuse":
            body = b'{"error": "too large"}'
            headers = [(b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 413, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await echo(scope, receive, send)

    async def main() -> tuple[bytes, bytes]:
        async with serving(app) as server:
            reader, writer = await connect(server)
            writer.write(b"POST /refuse HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % len(big))
            status = (await read_response(reader))[0]
            writer.write(big)  # the rest of the refused body, then the next request
            writer.write(b"GET /next HTTP/1.1\r\nhost: x\r\n\r\n")
            body = (await read_response(reader))[2]
            writer.close()
            return status, body

    assert run(main()) == (b"HTTP/1.1 413 Request Entity Too Large", b"GET /next? 0:")


def test_an_upgrade_request_is_answered_and_the_connection_closed() -> None:
    async def main() -> tuple[bytes, bool]:
        async with serving() as server:
            reader, writer = await connect(server)
            writer.write(b"GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\nnot http")
            status, headers, body = await read_response(reader)
            assert headers[b"connection"] == b"close" and body == b"GET /ws? 0:"
            return status, await closed(reader)

    assert run(main()) == (b"HTTP/1.1 200 OK", True)


def test_a_large_answer_arrives_intact_and_an_apps_own_connection_close_is_sent_once() -> None:
    big = bytes(range(256)) * 40_000  # 10 MB, written while the client reads slowly (flow control)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"content-length", str(len(big)).encode()), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": memoryview(big)})

    async def main() -> tuple[bytes, bytes, bool]:
        async with serving(app) as server:
            reader, writer = await connect(server)
            writer.write(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(0.2)  # let the server's send buffer fill: writing pauses
            body = await reader.readexactly(len(big))
            return head, body, await closed(reader)

    head, body, was_closed = run(main())
    assert head.lower().count(b"connection: close") == 1
    assert body == big and was_closed


def test_an_answer_held_back_for_a_burst_still_leaves_while_another_request_waits() -> None:
    """Answers are queued while other requests are in flight; one that waits (a thread, a queue) must not hold
    back the others' answers beyond the loop's turn."""

    async def main() -> bytes:
        release = asyncio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["path"] == "/hold":
                await release.wait()
            await echo(scope, receive, send)

        async with serving(app) as server:
            _, held_writer = await connect(server)
            held_writer.write(b"GET /hold HTTP/1.1\r\nhost: x\r\n\r\n")
            await held_writer.drain()
            await asyncio.sleep(0.05)  # /hold is in flight
            reader, writer = await connect(server)
            writer.write(b"GET /quick HTTP/1.1\r\nhost: x\r\n\r\n")
            body = (await read_response(reader))[2]  # arrives although /hold is still in flight
            release.set()
            writer.close()
            held_writer.close()
            return body

    assert run(main()) == b"GET /quick? 0:"
