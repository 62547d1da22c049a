"""Server REST transport: Server-Sent Events for the streaming routes (OpenAI's and Triton's generate_stream) and
the watch that cancels a request whose client disconnected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from modelplane.server.rest.http import Receive, Send

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def stream(
    send: Send, events: AsyncIterator[dict[str, Any]], error: Callable[[Exception], dict[str, Any]], last: bytes
) -> None:
    """One `data: {json}` event per item, then `last` (`data: [DONE]` for OpenAI). The headers go once the first
    event is ready, so an error before it is an ordinary error response; after it, `error(exc)` is sent as an
    event before `last`."""
    started = False
    try:
        async for event in events:
            if not started:
                await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
                started = True
            await send({"type": "http.response.body", "body": _event(event), "more_body": True})
    except Exception as exc:
        if not started:
            raise
        await send({"type": "http.response.body", "body": _event(error(exc)), "more_body": True})
    if not started:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": last, "more_body": False})


def _event(doc: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(doc) + b"\n\n"


async def until_gone(receive: Receive, work: Any) -> None:
    """Run `work`; if the client disconnects first, cancel it (its generator's cleanup frees the sequences)."""
    task = asyncio.current_task()
    assert task is not None

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()
        task.cancel()

    gone = asyncio.Event()
    watcher = asyncio.ensure_future(watch())
    try:
        await work
    except asyncio.CancelledError:
        if not gone.is_set():
            raise
    finally:
        watcher.cancel()
