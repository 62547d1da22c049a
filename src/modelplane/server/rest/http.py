"""Server REST transport: ASGI request reading and response writing helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

from modelplane.protocol.errors import InvalidInput, PayloadTooLarge

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

JSON = b"application/json"


def header_dict(scope: Scope) -> dict[str, str]:
    """Request headers for models: lower-case names, latin-1 values (last one wins)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


async def read_body(receive: Receive, limit: int, declared: int | None) -> bytes:
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidInput("client disconnected before the request body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def respond(send: Send, status: int, parts: Iterable[bytes | memoryview], headers: RawHeaders) -> None:
    """Send a response whose body is `parts` concatenated, without joining them (large tensors are not copied)."""
    parts = list(parts)
    length = sum(len(p) for p in parts)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(length).encode())],
        }
    )
    last = len(parts) - 1
    if last < 0:
        await send({"type": "http.response.body", "body": b""})
        return
    for i, part in enumerate(parts):
        await send({"type": "http.response.body", "body": part, "more_body": i < last})


async def respond_json(send: Send, status: int, doc: Any, headers: RawHeaders | None = None) -> None:
    await respond(send, status, [orjson.dumps(doc)], [(b"content-type", JSON), *(headers or [])])
