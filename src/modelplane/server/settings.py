"""Server: settings for one model-server process (ports, limits, threads, logging)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from modelplane.model.options import Batching, Limits
from modelplane.server.payload_log import LoggerConfig

MIB = 2**20


@dataclass(slots=True)
class ServerSettings:
    host: str = "127.0.0.1"  # loopback unless told otherwise (a container passes --host 0.0.0.0)
    http_port: int = 8080
    grpc_port: int = 8081
    enable_grpc: bool = True
    workers: int = 1
    max_body_bytes: int = 64 * MIB
    grpc_max_send_bytes: int = 64 * MIB
    grpc_max_receive_bytes: int = 64 * MIB
    max_threads: int | None = None  # worker threads for sync model code; None → min(32, cpus + 4)
    offload: str = "auto"  # auto | thread | inline (see server.pipeline.OffloadPolicy)
    access_log: bool = False
    log_level: str = "info"
    timeout_keep_alive: int = 65
    server_name: str = "modelplane"
    batching: Batching | None = None  # adaptive batching for every model that does not set its own
    limits: Limits = field(default_factory=Limits)  # overload limits for every model that does not set its own
    logger: LoggerConfig | None = None  # payload logger (CloudEvents to a sink)
    graceful_timeout_s: float = 30.0  # on SIGTERM: stop accepting, let in-flight requests finish this long
    model_control_mode: str = "explicit"  # "none": repository load/unload refused (Triton's --model-control-mode)
    max_connections: int = 1000  # open REST connections before a new one gets 503 (0: no cap)
    header_timeout_s: float = 10.0  # a request's headers must arrive within this long
    fork_after_load: bool = False  # --workers: load models once in the parent, fork workers that share the memory

    def thread_count(self) -> int:
        return self.max_threads or min(32, (os.cpu_count() or 1) + 4)
