"""Runtimes: Triton's `config.pbtxt` — the protobuf text format read by a small tokenizer, and the subset of
ModelConfig that decides how a model serves (name, platform/backend, max_batch_size, inputs and outputs, dynamic
batching, instance groups, version policy). Anything else is refused with its line and the supported fields, never
silently ignored."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from modelplane.protocol.types import TensorSpec

DATATYPES = {
    "TYPE_BOOL": "BOOL",
    "TYPE_UINT8": "UINT8",
    "TYPE_UINT16": "UINT16",
    "TYPE_UINT32": "UINT32",
    "TYPE_UINT64": "UINT64",
    "TYPE_INT8": "INT8",
    "TYPE_INT16": "INT16",
    "TYPE_INT32": "INT32",
    "TYPE_INT64": "INT64",
    "TYPE_FP16": "FP16",
    "TYPE_FP32": "FP32",
    "TYPE_FP64": "FP64",
    "TYPE_STRING": "BYTES",
}
# platform or backend -> modelplane runtime, and the model file Triton looks for in a version directory
PLATFORMS = {
    "onnxruntime_onnx": ("onnx", "model.onnx"),
    "onnxruntime": ("onnx", "model.onnx"),
    "pytorch_libtorch": ("pytorch", "model.pt"),
    "pytorch": ("pytorch", "model.pt"),
    "tensorflow_savedmodel": ("tensorflow", "model.savedmodel"),
    "tensorflow": ("tensorflow", "model.savedmodel"),
}
SCHEMA: dict[str, set[str]] = {  # message -> the fields modelplane reads
    "": {
        "name", "platform", "backend", "max_batch_size", "input", "output", "dynamic_batching", "instance_group",
        "version_policy", "default_model_filename",
    },
    "input": {"name", "data_type", "dims"},
    "output": {"name", "data_type", "dims"},
    "dynamic_batching": {"preferred_batch_size", "max_queue_delay_microseconds"},
    "instance_group": {"count", "kind", "name"},
    "version_policy": {"latest", "all", "specific"},
    "latest": {"num_versions"},
    "all": set(),
    "specific": {"versions"},
}  # fmt: skip
TOKEN = re.compile(r'\s+|#[^\n]*|(?P<tok>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{}\[\]:,;]|[^\s{}\[\]:,;#"\']+)')


class ConfigError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, int]]:
    out, pos, line = [], 0, 1
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if m is None:
            raise ConfigError(f"line {line}: cannot read {text[pos : pos + 20]!r}")
        if m.group("tok"):
            out.append((m.group("tok"), line))
        line += text.count("\n", pos, m.end())
        pos = m.end()
    return out


def parse_text(text: str) -> dict[str, list[Any]]:
    """Protobuf text format → {field: [values]} (every field a list; messages as dicts), checked against SCHEMA."""
    tokens = _tokens(text)
    pos = 0

    def peek() -> str:
        return tokens[pos][0] if pos < len(tokens) else ""

    def take(expected: str | None = None) -> tuple[str, int]:
        nonlocal pos
        if pos >= len(tokens):
            raise ConfigError(f"unexpected end of file{f', expected {expected!r}' if expected else ''}")
        tok = tokens[pos]
        if expected is not None and tok[0] != expected:
            raise ConfigError(f"line {tok[1]}: expected {expected!r}, found {tok[0]!r}")
        pos += 1
        return tok

    def scalar() -> Any:
        tok, line = take()
        if tok in "{}[]:,;":
            raise ConfigError(f"line {line}: expected a value, found {tok!r}")
        if tok[0] in "\"'":
            return tok[1:-1]
        if re.fullmatch(r"-?\d+", tok):
            return int(tok)
        if re.fullmatch(r"-?\d*\.\d+(e-?\d+)?", tok):
            return float(tok)
        return {"true": True, "false": False}.get(tok, tok)  # enum names stay strings

    def message(kind: str, closing: str) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        while peek() != closing:
            name, line = take()
            if kind not in SCHEMA or name not in SCHEMA[kind]:
                where = f"in {kind} " if kind else ""
                known = ", ".join(sorted(SCHEMA.get(kind, ()))) or "none"
                raise ConfigError(f"line {line}: field {name!r} {where}is not supported (supported: {known})")
            if peek() == ":":
                take(":")
            values = out.setdefault(name, [])
            if peek() == "{":
                take("{")
                values.append(message(name, "}"))
                take("}")
            elif peek() == "[":
                take("[")
                while peek() != "]":
                    if peek() == "{":
                        take("{")
                        values.append(message(name, "}"))
                        take("}")
                    else:
                        values.append(scalar())
                    if peek() == ",":
                        take(",")
                take("]")
            else:
                values.append(scalar())
            if peek() in (",", ";"):
                take()
        return out

    parsed = message("", "")
    if pos != len(tokens):
        raise ConfigError(f"line {tokens[pos][1]}: unexpected {tokens[pos][0]!r}")
    return parsed


def _one(msg: dict[str, list[Any]], name: str, default: Any = None) -> Any:
    values = msg.get(name) or []
    return values[-1] if values else default


@dataclass(frozen=True)
class TritonConfig:
    name: str
    runtime: str  # modelplane's runtime for the platform / backend
    filename: str  # the model file in each version directory
    max_batch_size: int = 0
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    preferred_batch_sizes: list[int] = field(default_factory=list)
    max_queue_delay_us: int | None = None  # set: dynamic batching is on
    instances: int = 1
    policy: tuple[str, list[int]] = ("latest", [1])  # ("latest", [n]) | ("all", []) | ("specific", versions)

    def pick(self, available: list[int]) -> list[int]:
        """The versions the policy serves, from the version directories there are."""
        kind, arg = self.policy
        ordered = sorted(available)
        if kind == "all":
            return ordered
        if kind == "specific":
            missing = [v for v in arg if v not in available]
            if missing:
                raise ConfigError(f"version_policy names version {missing[0]}, which has no directory")
            return sorted(arg)
        return ordered[-arg[0] :] if arg[0] > 0 else []


def _specs(entries: list[dict[str, list[Any]]], batched: bool, what: str) -> list[TensorSpec]:
    specs = []
    for entry in entries:
        name, dtype = _one(entry, "name"), _one(entry, "data_type", "")
        if not name:
            raise ConfigError(f"an {what} has no name")
        if dtype not in DATATYPES:
            raise ConfigError(f"{what} {name!r}: data_type {dtype!r} is not supported ({', '.join(DATATYPES)})")
        dims = [int(d) for d in entry.get("dims") or []]
        specs.append(TensorSpec(name, DATATYPES[dtype], [-1, *dims] if batched else dims))
    return specs


def load_config(text: str, directory_name: str) -> TritonConfig:
    msg = parse_text(text)
    name = _one(msg, "name", directory_name)
    if name != directory_name:
        raise ConfigError(f"config.pbtxt names the model {name!r}, but its directory is {directory_name!r}")
    kind = _one(msg, "platform") or _one(msg, "backend")
    if kind not in PLATFORMS:
        known = ", ".join(sorted(PLATFORMS))
        raise ConfigError(f"platform/backend {kind!r} is not served by modelplane (served: {known})")
    runtime, filename = PLATFORMS[kind]
    max_batch = int(_one(msg, "max_batch_size", 0))
    batching = _one(msg, "dynamic_batching")
    policy: tuple[str, list[int]] = ("latest", [1])
    vp = _one(msg, "version_policy")
    if vp:
        if "all" in vp:
            policy = ("all", [])
        elif "specific" in vp:
            policy = ("specific", [int(v) for v in _one(vp, "specific").get("versions", [])])
        elif "latest" in vp:
            policy = ("latest", [int(_one(_one(vp, "latest"), "num_versions", 1))])
    groups = msg.get("instance_group") or []
    for group in groups:
        if _one(group, "kind", "KIND_AUTO") == "KIND_GPU":
            raise ConfigError("instance_group kind KIND_GPU: modelplane serves these runtimes on the CPU")
    return TritonConfig(
        name=name,
        runtime=runtime,
        filename=_one(msg, "default_model_filename", filename),
        max_batch_size=max_batch,
        inputs=_specs(msg.get("input") or [], max_batch > 0, "input"),
        outputs=_specs(msg.get("output") or [], max_batch > 0, "output"),
        preferred_batch_sizes=[int(v) for v in (batching or {}).get("preferred_batch_size", [])],
        max_queue_delay_us=int(_one(batching, "max_queue_delay_microseconds", 0)) if batching is not None else None,
        instances=sum(int(_one(g, "count", 1)) for g in groups) or 1,
        policy=policy,
    )
