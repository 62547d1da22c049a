"""Protocol core: OpenAI request bodies → checked, transport-neutral calls. Unknown fields and fields this server
does not implement are refused with 400 naming them, never ignored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelplane.protocol.errors import InvalidInput
from modelplane.protocol.generation import GenerationRequest, SamplingParams
from modelplane.protocol.openai import fields as f

MAX_N = 16
_COMMON = frozenset(
    {
        "model",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "n",
        "stream",
        "stream_options",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "user",
        "logit_bias",
        "ignore_eos",
        "store",
        "metadata",
        "service_tier",
    }
)
_UNSUPPORTED = {"logit_bias": lambda v: v == {}, "store": False, "metadata": lambda v: v == {}, "service_tier": "auto"}
COMPLETION_FIELDS = _COMMON | {"prompt", "logprobs", "echo", "best_of", "suffix"}
CHAT_FIELDS = _COMMON | {
    "messages",
    "max_completion_tokens",
    "logprobs",
    "top_logprobs",
    "response_format",
    "chat_template",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "functions",
    "function_call",
    "modalities",
    "audio",
    "prediction",
    "reasoning_effort",
    "add_generation_prompt",
}
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


@dataclass(slots=True)
class Call:
    """What the routes run: one generation per prompt (completions may send several), streamed or not."""

    model: str
    requests: list[GenerationRequest]
    stream: bool = False
    include_usage: bool = False
    messages: list[dict[str, Any]] = field(default_factory=list)  # chat: rendered by the model's template
    chat_template: str | None = None
    top_logprobs: int | None = None  # chat: None when logprobs are off


def _object(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise InvalidInput("the request body must be a JSON object")
    return doc


def sampling(doc: dict[str, Any], max_tokens: int | None, logprobs: int | None) -> SamplingParams:
    """The sampling fields of a request (OpenAI's names; Triton's generate `parameters` use the same)."""
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=f.number(doc, "temperature", 1.0, 0.0, 2.0),
        top_p=f.number(doc, "top_p", 1.0, 0.0, 1.0) or 1.0,
        top_k=f.integer(doc, "top_k", 0, -1, 1 << 20) or 0,
        seed=f.integer(doc, "seed", None, -(1 << 63), (1 << 63) - 1),
        presence_penalty=f.number(doc, "presence_penalty", 0.0, -2.0, 2.0),
        frequency_penalty=f.number(doc, "frequency_penalty", 0.0, -2.0, 2.0),
        logprobs=logprobs,
        stop=f.stops(doc),
        ignore_eos=f.boolean(doc, "ignore_eos"),
    )


def _prompts(value: Any) -> list[str | list[int]]:
    """A string, a list of strings, a list of token ids, or a list of lists of token ids."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(p, str) for p in value):
            return list(value)
        if all(isinstance(t, int) and not isinstance(t, bool) for t in value):
            return [list(value)]
        if all(isinstance(p, list) and p and all(isinstance(t, int) for t in p) for p in value):
            return [list(p) for p in value]
    raise InvalidInput("'prompt' must be a string, a list of strings or a list of token ids", param="prompt")


def completion(body: Any) -> Call:
    doc = _object(body)
    f.refuse_unknown(doc, COMPLETION_FIELDS)
    f.refuse_unsupported(doc, {**_UNSUPPORTED, "suffix": "", "best_of": lambda v: v == doc.get("n", 1)})
    model = f.text(doc, "model", required=True) or ""
    if "prompt" not in doc:
        raise InvalidInput("'prompt' is required", param="prompt")
    n = f.integer(doc, "n", 1, 1, MAX_N) or 1
    stream = f.boolean(doc, "stream")
    logprobs = f.integer(doc, "logprobs", None, 0, 20)
    params = sampling(doc, f.integer(doc, "max_tokens", 16, 0, 1 << 20), logprobs)
    echo = f.boolean(doc, "echo")
    requests = [GenerationRequest(p, params, n, echo) for p in _prompts(doc["prompt"])]
    return Call(model, requests, stream, f.stream_options(doc, stream))


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise InvalidInput("'messages' must be a non-empty list", param="messages")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InvalidInput(f"messages[{i}] must be an object with a role of {sorted(ROLES)}", param="messages")
        content = message.get("content")
        if isinstance(content, list):  # content parts: only text is served
            texts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise InvalidInput(f"messages[{i}]: only text content parts are supported", param="messages")
                texts.append(part["text"])
            content = "".join(texts)
        elif content is not None and not isinstance(content, str):
            raise InvalidInput(f"messages[{i}].content must be a string or a list of parts", param="messages")
        if message.get("tool_calls"):
            raise InvalidInput("tool calls are not supported by this server", param="messages")
        out.append(
            {
                "role": message["role"],
                "content": content or "",
                **({"name": message["name"]} if isinstance(message.get("name"), str) else {}),
            }
        )
    return out


def chat(body: Any) -> Call:
    doc = _object(body)
    f.refuse_unknown(doc, CHAT_FIELDS)
    f.refuse_unsupported(
        doc,
        {
            **_UNSUPPORTED,
            "tools": lambda v: v == [],
            "tool_choice": "none",
            "functions": lambda v: v == [],
            "function_call": "none",
            "parallel_tool_calls": lambda v: isinstance(v, bool),
            "modalities": ["text"],
            "audio": lambda v: False,
            "prediction": lambda v: False,
            "reasoning_effort": lambda v: False,
            "add_generation_prompt": True,
        },
    )
    model = f.text(doc, "model", required=True) or ""
    messages = _messages(doc.get("messages"))
    n = f.integer(doc, "n", 1, 1, MAX_N) or 1
    stream = f.boolean(doc, "stream")
    wants = f.boolean(doc, "logprobs")
    top = f.integer(doc, "top_logprobs", None, 0, 20)
    if top is not None and not wants:
        raise InvalidInput("'top_logprobs' needs 'logprobs': true", param="top_logprobs")
    max_tokens = f.integer(doc, "max_completion_tokens", None, 1, 1 << 20)
    if max_tokens is None:
        max_tokens = f.integer(doc, "max_tokens", None, 1, 1 << 20)
    params = sampling(doc, max_tokens, (top or 0) if wants else None)
    fmt = doc.get("response_format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            raise InvalidInput("'response_format.type' must be text, json_object or json_schema", "response_format")
        if kind == "json_schema":
            raise InvalidInput(
                "response_format json_schema is not supported: the engine constrains output to any JSON object only",
                param="response_format",
            )
    params.json_object = fmt is not None and fmt.get("type") == "json_object"
    request = GenerationRequest("", params, n)
    return Call(
        model,
        [request],
        stream,
        f.stream_options(doc, stream),
        messages,
        f.text(doc, "chat_template"),
        (top or 0) if wants else None,
    )


@dataclass(slots=True)
class EmbeddingCall:
    model: str
    texts: list[str]
    base64: bool


def embedding(body: Any) -> EmbeddingCall:
    doc = _object(body)
    f.refuse_unknown(doc, frozenset({"model", "input", "encoding_format", "user", "dimensions"}))
    f.refuse_unsupported(doc, {"dimensions": lambda v: False})
    model = f.text(doc, "model", required=True) or ""
    value = doc.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidInput("'input' must be a string or a non-empty list of strings", param="input")
    if len(texts) > 2048:
        raise InvalidInput("'input' may hold at most 2048 strings", param="input")
    encoding = f.text(doc, "encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise InvalidInput("'encoding_format' must be float or base64", param="encoding_format")
    return EmbeddingCall(model, texts, encoding == "base64")


@dataclass(slots=True)
class RerankCall:
    model: str
    query: str
    documents: list[str]
    top_n: int
    return_documents: bool


def rerank(body: Any) -> RerankCall:
    doc = _object(body)
    f.refuse_unknown(doc, frozenset({"model", "query", "documents", "top_n", "return_documents"}))
    model = f.text(doc, "model", required=True) or ""
    query = f.text(doc, "query", required=True) or ""
    raw = doc.get("documents")
    if not isinstance(raw, list) or not raw or len(raw) > 1000:
        raise InvalidInput("'documents' must be a list of 1 to 1000 documents", param="documents")
    documents = []
    for d in raw:
        if isinstance(d, dict) and isinstance(d.get("text"), str):
            d = d["text"]
        if not isinstance(d, str):
            raise InvalidInput("each document must be a string or an object with 'text'", param="documents")
        documents.append(d)
    top_n = f.integer(doc, "top_n", len(documents), 1, 1 << 20) or len(documents)
    return RerankCall(model, query, documents, min(top_n, len(documents)), f.boolean(doc, "return_documents", True))
