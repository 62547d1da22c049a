"""Protocol core: OpenAI response bodies and stream chunks, built as plain dicts from the neutral types."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelplane.protocol.generation import Delta, TokenLogprob
from modelplane.protocol.ids import new_id

OWNER = "modelplane"
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def response_id(prefix: str) -> str:
    return f"{prefix}-{new_id().replace('-', '')}"


def error(message: str, status: int, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def model_object(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": OWNER}


def model_list(models: list[tuple[str, int]]) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(name, created) for name, created in models]}


def _bytes(token: str) -> list[int]:
    return list(token.encode("utf-8", errors="replace"))


def chat_logprobs(items: list[TokenLogprob]) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": t.token,
                "logprob": t.logprob,
                "bytes": _bytes(t.token),
                "top_logprobs": [{"token": s, "logprob": lp, "bytes": _bytes(s)} for s, lp in t.top],
            }
            for t in items
        ]
    }


def completion_logprobs(items: list[TokenLogprob], offset: int) -> dict[str, Any]:
    offsets = []
    for t in items:
        offsets.append(offset)
        offset += len(t.token)
    return {
        "tokens": [t.token for t in items],
        "token_logprobs": [t.logprob for t in items],
        "top_logprobs": [dict(t.top) for t in items],
        "text_offset": offsets,
    }


@dataclass(slots=True)
class Choice:
    """A whole choice, assembled from its deltas (non-streaming responses)."""

    index: int
    text: str = ""
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] = field(default_factory=list)
    completion_tokens: int = 0
    prompt_tokens: int = 0

    def add(self, delta: Delta) -> None:
        if delta.prompt_text is not None:
            self.text = delta.prompt_text + self.text
        self.text += delta.text
        self.logprobs.extend(delta.logprobs or [])
        self.completion_tokens = delta.completion_tokens
        self.prompt_tokens = delta.prompt_tokens
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason


def chat_completion(
    rid: str, created: int, model: str, choices: list[Choice], logprobs: bool, prompt_tokens: int
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": c.index,
                "message": {"role": "assistant", "content": c.text},
                "logprobs": chat_logprobs(c.logprobs) if logprobs else None,
                "finish_reason": c.finish_reason,
            }
            for c in choices
        ],
        "usage": usage(prompt_tokens, sum(c.completion_tokens for c in choices)),
    }


def text_completion(
    rid: str, created: int, model: str, choices: list[Choice], logprobs: bool, prompt_tokens: int
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": c.index,
                "text": c.text,
                "logprobs": completion_logprobs(c.logprobs, 0) if logprobs else None,
                "finish_reason": c.finish_reason,
            }
            for c in choices
        ],
        "usage": usage(prompt_tokens, sum(c.completion_tokens for c in choices)),
    }


def chat_chunk(
    rid: str,
    created: int,
    model: str,
    index: int,
    delta: dict[str, Any],
    finish: str | None,
    logprobs: list[TokenLogprob] | None,
    with_usage: bool,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": index,
                "delta": delta,
                "logprobs": chat_logprobs(logprobs) if logprobs is not None else None,
                "finish_reason": finish,
            }
        ],
    }
    if with_usage:
        doc["usage"] = None
    return doc


def completion_chunk(
    rid: str,
    created: int,
    model: str,
    index: int,
    text: str,
    finish: str | None,
    logprobs: list[TokenLogprob] | None,
    offset: int,
    with_usage: bool,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": rid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": index,
                "text": text,
                "logprobs": completion_logprobs(logprobs, offset) if logprobs is not None else None,
                "finish_reason": finish,
            }
        ],
    }
    if with_usage:
        doc["usage"] = None
    return doc


def usage_chunk(rid: str, created: int, model: str, obj: str, prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": rid,
        "object": obj,
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage(prompt, completion),
    }


def embeddings(model: str, vectors: np.ndarray, as_base64: bool, tokens: int) -> dict[str, Any]:
    data = []
    for i, vector in enumerate(np.asarray(vectors, dtype="<f4")):
        value: Any = base64.b64encode(vector.tobytes()).decode() if as_base64 else vector.tolist()
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def rerank(
    model: str, documents: list[str], scores: list[float], top_n: int, with_documents: bool, tokens: int
) -> dict[str, Any]:
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)[:top_n]
    results = []
    for i in order:
        item: dict[str, Any] = {"index": i, "relevance_score": scores[i]}
        if with_documents:
            item["document"] = {"text": documents[i]}
        results.append(item)
    return {"id": response_id("rerank"), "model": model, "results": results, "usage": {"total_tokens": tokens}}
