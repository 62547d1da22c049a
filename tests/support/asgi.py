"""Test support: one HTTP request through an ASGI app in-process (the app's own code path, no socket)."""

from __future__ import annotations

import asyncio
from typing import Any


async def call_async(
    app: Any, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"", query: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "query_string": query,
        "headers": raw,
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status, out_headers, chunks = 0, {}, []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, out_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers = {k.decode(): v.decode() for k, v in message.get("headers", [])}
        else:
            chunks.append(bytes(message.get("body", b"")))

    await app(scope, receive, send)
    return status, out_headers, b"".join(chunks)


def call(app: Any, *args: Any, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
    return asyncio.run(call_async(app, *args, **kwargs))
