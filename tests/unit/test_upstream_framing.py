"""The gateway's upstream client: nothing a client sends can add a line to the request it writes, and a connection
whose framing is in doubt is closed, never reused — so a response can never be matched to the wrong request."""

from __future__ import annotations

import asyncio

import pytest

from modelplane.backends.local.upstream import Upstream, UpstreamError


class Scripted:
    """A loopback server that answers the n-th request on each connection with the next scripted reply."""

    def __init__(self, replies: list[bytes]) -> None:
        self.replies = replies
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                writer.write(
                    self.replies.pop(0) if self.replies else b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nmine"
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def _exchange(replies: list[bytes], n: int, method: str = "GET") -> tuple[list, Scripted]:
    script = Scripted(replies)
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream = Upstream(f"http://127.0.0.1:{port}")
    out = []
    try:
        for _ in range(n):
            try:
                out.append(await upstream.request(method, "/x", [], b""))
            except UpstreamError as exc:
                out.append(exc)
    finally:
        upstream.close()
        server.close()
    return out, script


@pytest.mark.parametrize(
    ("headers", "target"),
    [
        ([(b"x-a", b"1\r\nx-injected: 1")], "/x"),
        ([(b"x-a", b"1\nGET /admin HTTP/1.1")], "/x"),
        ([(b"x-a\r\nx-b", b"1")], "/x"),
        ([(b"x-a", b"1\0")], "/x"),
        ([], "/x HTTP/1.1\r\nHost: y\r\n\r\nGET /y"),
        ([], "/x\n"),
    ],
)
def test_nothing_a_client_sends_adds_a_line(headers, target):
    async def run() -> None:
        with pytest.raises(ValueError, match="control character"):
            await Upstream("http://127.0.0.1:9").request("GET", target, headers, b"")

    asyncio.run(run())


def test_bytes_after_a_response_close_the_connection():
    """A replica (or a smuggled request) that leaves a second response in the pipe: it is never read as the
    answer to the next request."""
    extra = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nevil"
    out, script = asyncio.run(_exchange([extra], 2))
    assert [o[2] for o in out] == [b"ok", b"mine"]
    assert script.connections == 2


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\nok",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nbroken header\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n",
    ],
)
def test_ambiguous_framing_fails_the_request_and_the_connection(reply):
    out, script = asyncio.run(_exchange([reply, reply], 2))
    assert isinstance(out[0], UpstreamError)
    assert script.connections >= 2  # the doubtful connection was not reused


def test_head_and_204_have_no_body_and_keep_the_connection():
    replies = [b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n"]
    out, script = asyncio.run(_exchange(replies, 3, method="HEAD"))
    assert [o[:1] + o[2:] for o in out] == [(200, b""), (204, b""), (200, b"")]
    assert script.connections == 1


def test_draining_a_refused_body_never_waits_for_a_disconnect():
    """After a 413 the gateway drops what the client still sends; a body that was already complete must not make
    it wait for the next ASGI message, which would only come at disconnect."""
    from modelplane.backends.local.gateway_http import drain as _drain

    async def run() -> list[str]:
        seen = []

        async def receive():  # one more chunk, the end of the body, then nothing until the client leaves
            seen.append("receive")
            if len(seen) == 1:
                return {"type": "http.request", "body": b"x" * 10, "more_body": True}
            if len(seen) == 2:
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.sleep(3600)

        await asyncio.wait_for(_drain(receive, 1 << 20), 5)
        await asyncio.wait_for(_drain(receive, 1 << 20), 5)  # the body is complete: returns after a short pause
        return seen

    assert asyncio.run(run()) == ["receive", "receive", "receive"]
