"""Local backend: the gateway's HTTP plumbing — relaying an event stream chunk by chunk, draining a refused body
before its 413, reading a declared Content-Length."""

from __future__ import annotations

import asyncio
from typing import Any

from modelplane.backends.local.upstream import Stream, UpstreamError

DRAIN_BYTES = 64 * 2**20  # at most this much of a refused body is read (and dropped) before the 413
DRAIN_PAUSE_S = 0.2  # a client silent this long has sent all it will (or the body was already complete)


async def relay(status: int, headers: list[tuple[bytes, bytes]], stream: Stream, receive: Any, send: Any) -> None:
    """Forward an event stream chunk by chunk; a client that leaves closes the replica's connection (the replica
    then frees what it was generating)."""

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        stream.close()

    watcher = asyncio.ensure_future(watch())
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        async for chunk in stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except UpstreamError:
        pass  # the replica broke off: end the stream (the client sees no [DONE])
    finally:
        watcher.cancel()
        stream.close()  # a no-op when it ended: otherwise the replica must see this client leave
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def drain(receive: Any, cap: int) -> None:
    """Read and discard what the client is still sending (bounded): a socket closed with unread data is reset, and
    the reset can destroy the 413 before the client reads it."""
    dropped = 0
    while dropped < cap:
        try:  # the body may already be complete: then the next message only comes at disconnect
            message = await asyncio.wait_for(receive(), DRAIN_PAUSE_S)
        except TimeoutError:
            return
        if message["type"] == "http.disconnect" or not message.get("more_body"):
            return
        dropped += len(message.get("body", b""))


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for key, value in headers:
        if key == b"content-length":
            if not value.isdigit():
                raise ValueError("Content-Length must be a number")
            return int(value)
    return None
