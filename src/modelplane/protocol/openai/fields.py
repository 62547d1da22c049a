"""Protocol core: checked reads of OpenAI request fields; every refusal names the field (OpenAI's `param`)."""

from __future__ import annotations

from typing import Any

from modelplane.protocol.errors import InvalidInput

MISSING = object()


def number(doc: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = doc.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise InvalidInput(f"'{key}' must be a number from {lo:g} to {hi:g}, got {value!r}", param=key)
    return float(value)


def integer(doc: dict[str, Any], key: str, default: int | None, lo: int, hi: int) -> int | None:
    value = doc.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidInput(f"'{key}' must be a whole number from {lo} to {hi}, got {value!r}", param=key)
    return value


def boolean(doc: dict[str, Any], key: str, default: bool = False) -> bool:
    value = doc.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidInput(f"'{key}' must be true or false, got {value!r}", param=key)
    return value


def text(doc: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = doc.get(key)
    if value is None:
        if required:
            raise InvalidInput(f"'{key}' is required", param=key)
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"'{key}' must be a string", param=key)
    return value


def stops(doc: dict[str, Any]) -> list[str]:
    value = doc.get("stop")
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value) or len(value) > 16:
        raise InvalidInput("'stop' must be a non-empty string or a list of up to 16 of them", param="stop")
    return list(value)


def stream_options(doc: dict[str, Any], streaming: bool) -> bool:
    """Whether a usage chunk is wanted (`stream_options.include_usage`); only valid with `stream`."""
    value = doc.get("stream_options")
    if value is None:
        return False
    if not streaming:
        raise InvalidInput("'stream_options' is only allowed when 'stream' is true", param="stream_options")
    if not isinstance(value, dict) or set(value) - {"include_usage", "continuous_usage_stats"}:
        raise InvalidInput("'stream_options' may hold only 'include_usage'", param="stream_options")
    return boolean(value, "include_usage")


def refuse_unknown(doc: dict[str, Any], known: frozenset[str]) -> None:
    for key in doc:
        if key not in known:
            raise InvalidInput(f"Unrecognized request argument supplied: {key}", param=key)


def refuse_unsupported(doc: dict[str, Any], checks: dict[str, Any]) -> None:
    """Fields the API defines that this server does not implement: allowed only at their neutral value."""
    for key, neutral in checks.items():
        value = doc.get(key, MISSING)
        if value is MISSING or value is None or value == neutral or (callable(neutral) and neutral(value)):
            continue
        raise InvalidInput(f"'{key}' is not supported by this server", param=key)
