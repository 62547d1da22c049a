"""Server REST transport: Triton's generate extension — `POST /v2/models/{m}/generate` (one JSON answer) and
`generate_stream` (Server-Sent Events, one `data: {json}` per piece) — over the same Generation core as the
OpenAI routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from modelplane.model.generative import GenerativeModel
from modelplane.protocol.errors import InvalidInput
from modelplane.protocol.generation import GenerationRequest
from modelplane.protocol.openai import fields as f
from modelplane.protocol.openai import requests as rq
from modelplane.server.generation import Generation
from modelplane.server.rest import sse
from modelplane.server.rest.http import JSON, Receive, Send, read_body, respond

PARAMETERS = frozenset(
    {
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "ignore_eos",
        "stream",
    }
)


def parse(doc: Any) -> GenerationRequest:
    if not isinstance(doc, dict):
        raise InvalidInput("the request body must be a JSON object")
    unknown = set(doc) - {"text_input", "parameters", "id"}
    if unknown:
        raise InvalidInput(f"unknown field {sorted(unknown)[0]!r}; send 'text_input' and 'parameters'")
    text = doc.get("text_input")
    if not isinstance(text, str) or not text:
        raise InvalidInput("'text_input' must be a non-empty string")
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidInput("'parameters' must be an object")
    f.refuse_unknown(params, PARAMETERS)
    sampling = rq.sampling(params, f.integer(params, "max_tokens", 16, 1, 1 << 20), None)
    return GenerationRequest(text, sampling, request_id=str(doc.get("id") or ""))


async def generate(gen: Generation, name: str, stream: bool, max_body: int, receive: Receive, send: Send) -> None:
    body = await read_body(receive, max_body, None)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"Unrecognized request format: {exc}") from None
    request = parse(doc)
    model = gen.model(name, GenerativeModel)
    await sse.until_gone(receive, _answer(gen, name, model, request, stream, send))


async def _answer(
    gen: Generation, name: str, model: GenerativeModel, request: GenerationRequest, stream: bool, send: Send
) -> None:
    head: dict[str, Any] = {"model_name": name}
    if request.request_id:
        head["id"] = request.request_id
    deltas = gen.run(name, model, [request])
    if not stream:
        text, finish = [], None
        async for d in deltas:
            text.append(d.text)
            finish = d.finish_reason or finish
        await respond(
            send,
            200,
            [orjson.dumps({**head, "text_output": "".join(text), "finish_reason": finish})],
            [(b"content-type", JSON)],
        )
        return

    async def pieces() -> AsyncIterator[dict[str, Any]]:
        async for d in deltas:
            yield {**head, "text_output": d.text, "finish_reason": d.finish_reason}

    await sse.stream(send, pieces(), _error_event, b"")


def _error_event(exc: Exception) -> dict[str, Any]:
    return {"error": getattr(exc, "message", None) or f"{type(exc).__name__} : {exc}"}
