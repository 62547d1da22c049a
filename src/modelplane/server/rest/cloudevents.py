"""Server REST transport: CloudEvents 1.0 binary and structured mode on the V1/V2 data plane."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from modelplane.protocol.errors import InvalidInput

REQUIRED = ("specversion", "id", "source", "type")
STRUCTURED_KEYS = frozenset({"time", "type", "source", "id", "specversion", "data"})
JSON_TYPES = ("application/json", "application/cloudevents+json", "application/ld+json")


@dataclass(slots=True)
class CloudEventConfig:
    source: str | None = None
    type: str = "io.kserve.inference.response"
    merge: bool = False

    @classmethod
    def from_env(cls) -> CloudEventConfig:
        return cls(
            source=os.environ.get("CE_SOURCE") or None,
            type=os.environ.get("CE_TYPE", "io.kserve.inference.response"),
            merge=os.environ.get("CE_MERGE", "false").lower() == "true",
        )


@dataclass(slots=True)
class IncomingEvent:
    binary: bool
    attributes: dict[str, Any] = field(default_factory=dict)


def is_binary_event(headers: Mapping[str, str]) -> bool:
    return all(f"ce-{k}" in headers for k in REQUIRED)


def decode_binary(body: bytes, headers: Mapping[str, str]) -> tuple[Any, IncomingEvent]:
    attrs = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
    ctype = headers.get("content-type", "")
    if not ctype or ctype.split(";")[0].strip() in JSON_TYPES:
        try:
            payload: Any = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"Failed to decode or parse binary json cloudevent: {exc}") from None
    else:
        payload = body
    return payload, IncomingEvent(True, attrs)


def decode_structured(doc: Any) -> tuple[Any, IncomingEvent]:
    if not isinstance(doc, dict):  # JSON, but a number, string or list: no event at all
        raise InvalidInput("a structured cloudevent must be a JSON object with 'data'")
    if "data" not in doc:
        raise InvalidInput("structured cloudevent has no 'data'")
    attrs = {k: v for k, v in doc.items() if k != "data"}
    return doc["data"], IncomingEvent(False, attrs)


def _attributes(event: IncomingEvent, config: CloudEventConfig, model_name: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if config.merge:
        attrs.update(event.attributes)
        attrs.pop("datacontenttype", None) if event.binary else None
    attrs.update(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": config.source or f"io.kserve.inference.{model_name}",
            "type": config.type,
            "time": datetime.now(UTC).isoformat(),
        }
    )
    return attrs


def encode(
    result_json: bytes, event: IncomingEvent, config: CloudEventConfig, model_name: str
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Response body and headers for a CloudEvent request: binary in → binary out, structured → structured."""
    attrs = _attributes(event, config, model_name)
    if event.binary:
        headers = [(f"ce-{k}".encode(), str(v).encode()) for k, v in attrs.items()]
        return result_json, [*headers, (b"content-type", b"application/json")]
    doc = orjson.dumps({**attrs, "data": orjson.Fragment(result_json)})
    return doc, [(b"content-type", b"application/cloudevents+json")]
