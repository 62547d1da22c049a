"""Server REST transport: ASGI request reading and response writing helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

import orjson

from modelplane.protocol.errors import InvalidInput, PayloadTooLarge

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

JSON = b"application/json"


class RequestHeaders(MutableMapping[str, str]):
    """Request headers for models: lower-case names, latin-1 values (last one wins). A model may write to them, as
    KServe's transformers do to pass a note from preprocess to postprocess (the response is not affected).

    Built from the ASGI header list only when a model first reads it; most models never do."""

    __slots__ = ("_dict", "_raw")

    def __init__(self, raw: RawHeaders) -> None:
        self._raw = raw
        self._dict: dict[str, str] | None = None

    def _items(self) -> dict[str, str]:
        if self._dict is None:
            self._dict = {k.decode("latin-1"): v.decode("latin-1") for k, v in self._raw}
        return self._dict

    def __getitem__(self, key: str) -> str:
        return self._items()[key]

    def __setitem__(self, key: str, value: str) -> None:
        self._items()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._items()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __repr__(self) -> str:
        return f"RequestHeaders({self._items()!r})"


def header_dict(scope: Scope) -> RequestHeaders:
    return RequestHeaders(scope["headers"])


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


JOIN_BELOW = 64 * 1024  # bodies up to this size go out in one write


async def respond(send: Send, status: int, parts: Iterable[bytes | memoryview], headers: RawHeaders) -> None:
    """Send a response whose body is `parts` concatenated: joined when small (one write), else one chunk each (large
    tensors are not copied). Content-Length is appended to `headers`, a list the caller made for this response."""
    parts = parts if isinstance(parts, list) else list(parts)
    length = 0
    for part in parts:
        length += len(part)
    headers.append((b"content-length", b"%d" % length))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if len(parts) == 1:
        await send({"type": "http.response.body", "body": parts[0]})
    elif len(parts) == 0 or length <= JOIN_BELOW:  # a copy of a small body costs less than a second write
        await send({"type": "http.response.body", "body": b"".join(parts)})
    else:
        last = len(parts) - 1
        for i, part in enumerate(parts):
            await send({"type": "http.response.body", "body": part, "more_body": i < last})


async def respond_json(send: Send, status: int, doc: Any, headers: RawHeaders | None = None) -> None:
    await respond(send, status, [orjson.dumps(doc)], [(b"content-type", JSON), *(headers or [])])
