"""Server: the settings of one model-server process (ports, limits, threads, batching, payload logging) — each
declared once, on its field: `modelplane serve`'s options are generated from these fields (cli/serve_options.py)
and the platform writes replica command lines with `argv()`."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import MISSING, dataclass, fields
from typing import Any

from modelplane.model.fields import (
    FLAGS,
    GROUP,
    byte_quantity,
    comma_join,
    comma_names,
    group,
    lower,
    option,
    truthy,
)
from modelplane.model.options import Batching, Limits

MIB = 2**20
MODES = ("all", "request", "response")


@dataclass(frozen=True, slots=True)
class LoggerConfig:
    """The payload logger (KServe's `logger`): requests and responses posted as CloudEvents to `url`."""

    url: str = option(MISSING, "--log-url", "--logger-url", help="Payload logger sink URL")
    mode: str = option("all", "--log-mode", help="all | request | response")
    metadata_headers: tuple[str, ...] = option(
        (),
        "--metadata-headers",
        "--log-metadata-headers",
        help="Comma list of request headers copied into ce-metadata",
        parse=comma_names,
        show=comma_join,
    )
    source_uri: str = option("", "--source-uri", help="ce-source of logged events (default: this server)")
    inference_service: str = option("", "--inference-service", help="ce-inferenceservicename")
    namespace: str = option("", "--namespace", help="ce-namespace")
    component: str = option("predictor", "--component", help="ce-component")
    endpoint: str = option("", "--endpoint", help="ce-endpoint (default, canary)")
    queue_size: int = option(1000, "--log-queue-size", help="Events held for a slow sink")
    senders: int = 2
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"logger mode must be one of {', '.join(MODES)}, got {self.mode!r}")


@dataclass(frozen=True, slots=True)
class ModelCacheConfig:
    """Many models in one server (ModelMesh-style): a repository's models are registered without loading, loaded on
    their first request and evicted least-recently-used when the loaded ones would exceed `capacity_bytes`."""

    capacity_bytes: int = option(
        MISSING,
        "--model-cache-bytes",
        help="Bytes of loaded models (512Mi, 2G); turns on loading on first request and LRU eviction",
        parse=byte_quantity,
    )
    min_age_s: float = option(10.0, "--cache-min-age", help="Seconds: a model used this recently is never evicted")
    max_loads: int = option(2, "--max-concurrent-loads", help="Models loading at once")
    load_timeout_s: float = option(90.0, "--load-timeout", help="Seconds a request waits for its model to load")
    retry_s: float = option(
        30.0, "--load-retry", help="Seconds before a failed load is tried again (doubles, 16x most)"
    )
    pinned: tuple[str, ...] = option(
        (),
        "--pin-models",
        help="Comma list of models loaded at start and never evicted",
        parse=comma_names,
        show=comma_join,
    )

    def __post_init__(self) -> None:
        if self.capacity_bytes <= 0 or self.max_loads < 1 or self.load_timeout_s <= 0 or self.retry_s < 0:
            raise ValueError("--model-cache-bytes, --max-concurrent-loads and --load-timeout must be positive")


HTTP_SERVERS = ("modelplane", "uvicorn")  # REST server implementations (server/app.py maps each to its code)
GRPC_SERVERS = ("modelplane", "grpcio")  # gRPC server implementations (likewise)


def _choice(text: str, allowed: tuple[str, ...], flag: str) -> str:
    if text not in allowed:
        raise ValueError(f"{flag} must be one of {', '.join(allowed)}; got {text!r}")
    return text


@dataclass(slots=True)
class ServerSettings:
    host: str = option("127.0.0.1", "--host", help="Bind address (0.0.0.0 to serve other machines)")
    http_port: int = option(8080, "--http-port", "--http_port")
    grpc_port: int = option(8081, "--grpc-port", "--grpc_port")
    enable_grpc: bool = option(True, "--enable-grpc", "--enable_grpc", parse=truthy, show=lower)
    workers: int = option(1, "--workers")
    max_threads: int | None = option(
        None,
        "--max-threads",
        "--max_threads",
        "--max_asyncio_workers",
        help="Worker threads for sync model code (default: min(32, cpus + 4))",
    )
    max_body_bytes: int = option(64 * MIB, "--max-body-bytes")
    grpc_max_message_bytes: int = option(
        64 * MIB, "--grpc-max-message-bytes", help="gRPC message limit, both directions"
    )
    grpc_max_send_bytes: int | None = option(None, "--grpc_max_send_message_length", hidden=True)
    grpc_max_receive_bytes: int | None = option(None, "--grpc_max_receive_message_length", hidden=True)
    offload: str = option("auto", "--offload", help="Sync model code: auto | thread | inline")
    access_log: bool = option(False, "--access-log/--no-access-log")
    http_server: str = option(
        "modelplane",
        "--http-server",
        help="REST server: modelplane (its own HTTP/1.1, the fastest) | uvicorn",
        parse=lambda text: _choice(text, HTTP_SERVERS, "--http-server"),
    )
    grpc_server: str = option(
        "modelplane",
        "--grpc-server",
        help="gRPC server: modelplane (its own HTTP/2, the fastest) | grpcio",
        parse=lambda text: _choice(text, GRPC_SERVERS, "--grpc-server"),
    )
    log_level: str = option("info", "--log-level")
    timeout_keep_alive: int = 65
    server_name: str = "modelplane"
    batching: Batching | None = group(
        Batching, "--enable-batcher", "--enable_batcher", help="Adaptive batching (all protocols)", optional=True
    )  # for every model that does not set its own
    limits: Limits = group(Limits)  # overload limits for every model that does not set its own
    logger: LoggerConfig | None = group(LoggerConfig, optional=True)  # on with --log-url
    model_cache: ModelCacheConfig | None = group(ModelCacheConfig, optional=True)  # on with --model-cache-bytes
    graceful_timeout_s: float = option(30.0, "--graceful-timeout", help="Seconds in-flight requests get on shutdown")
    model_control_mode: str = option(
        "explicit",
        "--model-control-mode",
        "--model_control_mode",
        help="explicit | none (refuse repository load/unload, as Triton's)",
    )
    max_connections: int = option(
        1000, "--max-connections", help="Open connections per front end (REST: then 503; gRPC) (0: the fd limit)"
    )
    header_timeout_s: float = option(
        10.0, "--header-timeout", help="Seconds to send a request's headers (gRPC: a connection's first call)"
    )
    fork_after_load: bool = option(
        False,
        "--fork-after-load/--load-per-worker",
        help="--workers: load once, share memory copy-on-write",
    )

    def thread_count(self) -> int:
        return self.max_threads or min(32, (os.cpu_count() or 1) + 4)

    @property
    def grpc_send_limit(self) -> int:
        return self.grpc_max_send_bytes or self.grpc_max_message_bytes

    @property
    def grpc_receive_limit(self) -> int:
        return self.grpc_max_receive_bytes or self.grpc_max_message_bytes


def finish(settings: ServerSettings) -> ServerSettings:
    """Defaults that depend on other settings: a logged event's source is this server unless told otherwise."""
    if settings.logger is not None and not settings.logger.source_uri:
        source = f"http://localhost:{settings.http_port}/"
        settings.logger = dataclasses.replace(settings.logger, source_uri=source)
    return settings


def argv(settings: ServerSettings) -> list[str]:
    """The `modelplane serve` options that reproduce `settings`: every flagged field that differs from its default."""
    out: list[str] = []
    for f in fields(settings):
        value = getattr(settings, f.name)
        if f.metadata.get(GROUP) is None:
            if FLAGS in f.metadata and value != f.default:
                out += _flag(f, value)
            continue
        if value is None:
            continue
        if f.metadata.get(FLAGS):
            out.append(f.metadata[FLAGS][0])  # the group's on-switch
        for g in fields(value):
            member = getattr(value, g.name)
            if FLAGS in g.metadata and (g.default is MISSING or member != g.default):
                out += _flag(g, member)
    return out


def _flag(f: dataclasses.Field[Any], value: Any) -> list[str]:
    on, _, off = f.metadata[FLAGS][0].partition("/")
    if off:
        return [on if value else off]
    if value is None:
        return []
    show = f.metadata.get("show") or str
    return [on, show(value)]
