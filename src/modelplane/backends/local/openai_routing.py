"""Local backend: what the gateway reads from OpenAI requests — model-name routing (a request on the gateway's own
host goes to the InferenceService its body's `model` names; the model list is the union of what the ready
predictors serve) and the prompt-prefix key that sends requests sharing a prefix to the replica that has it
cached."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from modelplane.backends.local.forward import NoRoute
from modelplane.protocol.errors import InvalidInput

_BY_BODY = ("/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/rerank")
_LISTS = ("/openai/v1/models", "/v1/models")


def addressed_by_body(path: str) -> bool:
    """An OpenAI route whose model is named in the body, or the model list."""
    path = path.split("?", 1)[0]
    return path.endswith(_BY_BODY) or path in _LISTS


def is_model_list(path: str) -> bool:
    return path.split("?", 1)[0] in _LISTS


def model_field(body: bytes) -> str:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput("the request body is not valid JSON") from None
    model = doc.get("model") if isinstance(doc, dict) else None
    if not isinstance(model, str) or not model:
        raise InvalidInput("'model' is required to route a request that names no InferenceService")
    return model


def route_for(routes: Mapping[tuple[str, str], Any], model: str) -> tuple[str, str]:
    """The InferenceService named `model`: the one in namespace `default` when several namespaces have one."""
    found = sorted(key for key in routes if key[1] == model)
    if not found:
        raise NoRoute(f"no InferenceService serves model {model!r}")
    if len(found) > 1:
        if ("default", model) in found:
            return "default", model
        names = ", ".join(f"{ns}/{name}" for ns, name in found)
        raise NoRoute(f"model {model!r} is served in several namespaces ({names}): address one by host or path")
    return found[0]


def merge_model_lists(answers: Iterable[tuple[int, Any, Any]]) -> bytes:
    seen: dict[str, Any] = {}
    for _, _, body in answers:
        try:
            doc = orjson.loads(body)
        except (orjson.JSONDecodeError, TypeError):
            continue
        for item in doc.get("data", []) if isinstance(doc, dict) else []:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                seen.setdefault(item["id"], item)
    return orjson.dumps({"object": "list", "data": [seen[k] for k in sorted(seen)]})


PREFIX_CHARS = 256  # a completion prompt's key: its first characters (the gateway has no tokenizer)
_GENERATION = ("/v1/completions", "/v1/chat/completions")


def prefix_key(path: str, body: bytes) -> int | None:
    """The shared prefix a generation request probably has cached somewhere: a chat's messages before its last
    one (the system prompt and the history), else the first PREFIX_CHARS characters of its first message or
    prompt. None for anything else (nothing worth keeping together)."""
    if not path.split("?", 1)[0].endswith(_GENERATION):
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    messages = doc.get("messages")
    if isinstance(messages, list) and messages:
        shared: object = messages[:-1] if len(messages) > 1 else str(messages[0])[:PREFIX_CHARS]
    elif isinstance(doc.get("prompt"), str):
        shared = doc["prompt"][:PREFIX_CHARS]
    else:
        return None
    digest = hashlib.blake2b(orjson.dumps([doc.get("model"), shared]), digest_size=8).digest()
    return int.from_bytes(digest, "little")
