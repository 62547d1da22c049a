"""Server REST transport: the OpenAI-compatible routes (`{prefix}/v1/models`, `completions`, `chat/completions`,
`embeddings`, `rerank`) over the Generation core — JSON answers, Server-Sent Events streams, OpenAI's error
envelope, and a client that disconnects cancels its sequences at once."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from modelplane.model.generative import EmbeddingModel, GenerativeModel
from modelplane.protocol.errors import InvalidInput, ModelNotFound, ModelplaneError, RouteNotFound, status_of
from modelplane.protocol.generation import Delta
from modelplane.protocol.openai import requests as rq
from modelplane.protocol.openai import responses as rs
from modelplane.server.generation import Generation
from modelplane.server.rest import sse
from modelplane.server.rest.http import Receive, Scope, Send, read_body, respond_json

log = logging.getLogger("modelplane.openai")
DONE = b"data: [DONE]\n\n"


def route_prefix() -> str:
    """`/<prefix>/v1` as KServe's KSERVE_OPENAI_ROUTE_PREFIX sets it (default `openai`; empty: plain `/v1`)."""
    prefix = os.environ.get("KSERVE_OPENAI_ROUTE_PREFIX", "openai").strip("/")
    return f"/{prefix}/v1" if prefix else "/v1"


class OpenAIRoutes:
    POSTS = ("/completions", "/chat/completions", "/embeddings", "/rerank")

    def __init__(self, generation: Generation, max_body: int) -> None:
        self.generation = generation
        self.max_body = max_body
        self.prefix = route_prefix()

    def handles(self, path: str, method: str) -> str | None:
        """The route under the prefix or plain /v1 (None: not ours). Plain GET /v1/models stays KServe's route,
        which adds OpenAI's fields (see `model_list`)."""
        for base in (self.prefix, "/v1"):
            if path.startswith(base + "/"):
                rest = path[len(base) :]
                if rest in self.POSTS or (base != "/v1" and (rest == "/models" or rest.startswith("/models/"))):
                    return rest
        return None

    async def __call__(self, rest: str, method: str, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if rest == "/models" or rest.startswith("/models/"):
                if method != "GET":
                    raise InvalidInput(f"Method {method} not allowed; use GET")
                doc = self.model_list() if rest == "/models" else self.model_object(rest[8:])
                await respond_json(send, 200, doc)
                return
            if method != "POST":
                raise InvalidInput(f"Method {method} not allowed; use POST")
            body = await read_body(receive, self.max_body, None)
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"the request body is not valid JSON: {exc}") from None
            if rest == "/embeddings":
                await self._embeddings(doc, send)
            elif rest == "/rerank":
                await self._rerank(doc, send)
            else:
                chat = rest == "/chat/completions"
                call = rq.chat(doc) if chat else rq.completion(doc)
                await sse.until_gone(receive, self._generate(call, chat, send))
        except Exception as exc:
            status, doc = _error(exc)
            extra = getattr(exc, "headers", None) or {}
            await respond_json(send, status, doc, [(k.encode(), v.encode()) for k, v in extra.items()])

    def model_list(self) -> dict[str, Any]:
        return rs.model_list(self.generation.served())

    def model_object(self, name: str) -> dict[str, Any]:
        return rs.model_object(*self.generation.served_model(name))

    async def _embeddings(self, doc: Any, send: Send) -> None:
        call = rq.embedding(doc)
        model = self.generation.model(call.model, EmbeddingModel)
        vectors, tokens = await model.embed(call.texts)
        await respond_json(send, 200, rs.embeddings(call.model, vectors, call.base64, tokens))

    async def _rerank(self, doc: Any, send: Send) -> None:
        call = rq.rerank(doc)
        model = self.generation.model(call.model, EmbeddingModel)
        scores, tokens = await model.rerank(call.query, call.documents)
        await respond_json(
            send, 200, rs.rerank(call.model, call.documents, scores, call.top_n, call.return_documents, tokens)
        )

    async def _generate(self, call: rq.Call, chat: bool, send: Send) -> None:
        gen = self.generation
        model = gen.model(call.model, GenerativeModel)
        gen.prepare(model, call.requests, call.messages, call.chat_template)
        deltas = gen.run(call.model, model, call.requests)
        rid, created = rs.response_id("chatcmpl" if chat else "cmpl"), int(time.time())
        logprobs = call.top_logprobs is not None if chat else call.requests[0].params.logprobs is not None
        if call.stream:
            await sse.stream(send, _chunks(call, chat, deltas, rid, created), _error_event, DONE)
            return
        choices: dict[int, rs.Choice] = {}
        async for delta in deltas:
            choices.setdefault(delta.index, rs.Choice(delta.index)).add(delta)
        ordered = [choices[i] for i in sorted(choices)]
        build = rs.chat_completion if chat else rs.text_completion
        n = call.requests[0].n
        prompt_tokens = sum({c.index // n: c.prompt_tokens for c in ordered}.values())  # once per prompt, not choice
        await respond_json(send, 200, build(rid, created, call.model, ordered, logprobs, prompt_tokens))


async def _chunks(
    call: rq.Call, chat: bool, deltas: AsyncIterator[Delta], rid: str, created: int
) -> AsyncIterator[dict[str, Any]]:
    model, usage = call.model, call.include_usage
    begun: set[int] = set()
    offsets: dict[int, int] = {}
    completion_tokens: dict[int, int] = {}
    prompts: dict[int, int] = {}  # prompt -> its tokens, as the runtime counted them
    n = call.requests[0].n
    async for d in deltas:
        completion_tokens[d.index] = d.completion_tokens
        prompts[d.index // n] = d.prompt_tokens
        if chat:
            if d.index not in begun:  # the first chunk of a choice carries the role
                begun.add(d.index)
                yield rs.chat_chunk(
                    rid, created, model, d.index, {"role": "assistant", "content": ""}, None, None, usage
                )
            if d.text or d.finish_reason is None or d.logprobs:
                delta = {"content": d.text} if d.text or d.finish_reason is None else {}
                finish = d.finish_reason
                yield rs.chat_chunk(rid, created, model, d.index, delta, finish, d.logprobs, usage)
            elif d.finish_reason is not None:
                yield rs.chat_chunk(rid, created, model, d.index, {}, d.finish_reason, None, usage)
        else:
            text = (d.prompt_text or "") + d.text
            offset = offsets.get(d.index, 0)
            offsets[d.index] = offset + len(text)
            yield rs.completion_chunk(rid, created, model, d.index, text, d.finish_reason, d.logprobs, offset, usage)
    if usage:
        kind = "chat.completion.chunk" if chat else "text_completion"
        prompt_tokens = sum(prompts.values())
        yield rs.usage_chunk(rid, created, model, kind, prompt_tokens, sum(completion_tokens.values()))


def _error_event(exc: Exception) -> dict[str, Any]:
    return _error(exc)[1]


def _error(exc: BaseException) -> tuple[int, dict[str, Any]]:
    status = status_of(exc).http
    if isinstance(exc, ModelplaneError):
        message = exc.message
        code = "model_not_found" if isinstance(exc, ModelNotFound) else None
        if isinstance(exc, RouteNotFound):
            code = "not_found"
        return status, rs.error(message, status, getattr(exc, "param", None), code)
    log.exception("unhandled error in an OpenAI route")
    return status, rs.error(f"{type(exc).__name__} : {exc}", status)
