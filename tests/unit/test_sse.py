"""The event-stream writer: one `data:` event per item and the closing line; an error before the first event is
an ordinary error (the caller answers it), after it an error event precedes the closing line."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from modelplane.protocol.errors import InvalidInput
from modelplane.server.rest import sse


async def written(events: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await sse.stream(send, events, lambda exc: {"error": str(exc)}, b"data: [DONE]\n\n")
    return sent


def test_events_then_the_closing_line() -> None:
    async def two() -> AsyncIterator[dict[str, Any]]:
        yield {"a": 1}
        yield {"b": "x"}

    sent = asyncio.run(written(two()))
    assert (
        sent[0]["type"] == "http.response.start"
        and (b"content-type", b"text/event-stream; charset=utf-8") in (sent[0]["headers"])
    )
    assert b"".join(m["body"] for m in sent[1:]) == b'data: {"a":1}\n\ndata: {"b":"x"}\n\ndata: [DONE]\n\n'
    assert [m.get("more_body") for m in sent[1:]] == [True, True, False]


def test_an_error_after_the_first_event_becomes_an_error_event() -> None:
    async def breaks() -> AsyncIterator[dict[str, Any]]:
        yield {"a": 1}
        raise InvalidInput("the model failed")

    sent = asyncio.run(written(breaks()))
    body = b"".join(m["body"] for m in sent[1:])
    assert body == b'data: {"a":1}\n\ndata: {"error":"the model failed"}\n\ndata: [DONE]\n\n'


def test_an_error_before_the_first_event_is_raised_for_an_ordinary_answer() -> None:
    async def fails() -> AsyncIterator[dict[str, Any]]:
        raise InvalidInput("bad")
        yield {}  # pragma: no cover - makes this an async generator

    with pytest.raises(InvalidInput):
        asyncio.run(written(fails()))
