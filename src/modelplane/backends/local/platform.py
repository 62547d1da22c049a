"""Local backend: one process running the control plane — API server, controller loop and gateway — for one
MODELPLANE_HOME (two homes are two independent platforms)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelplane.backends.controller import Controller
from modelplane.backends.local.apiserver import ApiServer
from modelplane.backends.local.auth import ApiGuard, TokenFile, ensure_token
from modelplane.backends.local.backend import LocalBackend
from modelplane.backends.local.gateway import DEFAULT_MAX_BODY, Gateway
from modelplane.backends.local.grpc_gateway import GrpcGateway
from modelplane.backends.local.mesh import MeshRegistry
from modelplane.backends.local.mesh_store import StoreRegistries
from modelplane.backends.local.metrics import registry, render
from modelplane.backends.local.replicas import ReplicaSet
from modelplane.backends.local.revision import Revisions
from modelplane.backends.local.store import Store, home
from modelplane.backends.local.zygote import Zygote
from modelplane.proctitle import set_title
from modelplane.server.grpc.h2frames import limits_for
from modelplane.server.grpc.h2server import GrpcH2Server
from modelplane.server.rest.limits import ConnectionLimits
from modelplane.server.rest.listener import HttpServer
from modelplane.server.signals import stop_event

log = logging.getLogger("modelplane.platform")
LOCAL_MAX_SCALE = 100  # replicas per revision when config-autoscaler sets no max-scale-limit (processes on one host)


class PortInUse(Exception):
    """A port the platform needs is taken: says which, and the flag that changes it."""


def _bind(host: str, port: int, what: str, flag: str, listen: bool = True) -> socket.socket:
    """A bound (and listening) socket, or PortInUse — before anything says the platform is up."""
    # IPPROTO_TCP explicitly: asyncio turns Nagle off only on sockets whose proto says TCP, and a response written
    # as head + body would otherwise wait ~40 ms for the client's delayed ACK on every keep-alive request
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortInUse(
            f"the {what} port {host}:{port} is in use ({exc.strerror}); choose another with {flag}"
        ) from None
    if listen:
        sock.listen(2048)
    return sock


def _connectable(host: str) -> str:
    """An address the CLI can connect to for a bind address (a wildcard bind is reached on loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, f"[{host}]" if ":" in host else host)


@dataclass(frozen=True, slots=True)
class PlatformConfig:
    host: str = "127.0.0.1"  # the gateway's (HTTP and gRPC) bind address
    gateway_port: int = 8080
    api_host: str = "127.0.0.1"  # the control-plane API's bind address, separate from the gateway's
    api_port: int = 8090
    grpc_port: int = 8081  # the gateway's gRPC side
    domain: str = "example.com"
    stop_replicas_on_exit: bool = True
    zygote: bool = True  # start modelplane-server replicas by forking a pre-imported process
    max_body_bytes: int = DEFAULT_MAX_BODY  # gateway request bodies and gRPC messages (413 / RESOURCE_EXHAUSTED)
    limits: ConnectionLimits = field(
        default_factory=ConnectionLimits
    )  # open connections and header deadline, gateway and API
    allowed_hosts: tuple[str, ...] = ()  # Host names the API answers besides loopback and its bind address
    mesh_etcd: str = ""  # etcd URL: multi-model placement shared with other platforms (empty: the SQLite store)


def _etcd_registries(url: str) -> Callable[[str], MeshRegistry]:
    """One etcd-backed registry per multi-model revision (its own key prefix), started on the platform's loop."""
    from modelplane.backends.local.mesh_etcd import EtcdRegistry

    started: set[asyncio.Task[None]] = set()

    def make(revision: str) -> MeshRegistry:
        registry = EtcdRegistry(url, prefix=f"/modelplane/mesh/{revision}/")
        task = asyncio.get_running_loop().create_task(registry.start())
        started.add(task)
        task.add_done_callback(started.discard)
        return registry

    return make


def info_path(root: Path | None = None) -> Path:
    return (root or home()) / "platform.json"


def read_info(root: Path | None = None) -> dict[str, object] | None:
    try:
        return json.loads(info_path(root).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


async def serve(config: PlatformConfig) -> None:
    root = home()
    # every port first: a platform that cannot bind says so and leaves nothing behind (no state file, no zygote)
    gateway_sock = _bind(config.host, config.gateway_port, "gateway HTTP", "--port")
    try:
        api_sock = _bind(config.api_host, config.api_port, "control-plane API", "--api-port")
        _bind(config.host, config.grpc_port, "gateway gRPC", "--grpc-port", listen=False).close()
    except PortInUse:
        gateway_sock.close()
        raise
    instance = uuid.uuid4().hex  # the CLI checks that the API it reaches is this home's platform
    set_title(f"modelplane platform {root}")
    ensure_token(root)  # the API refuses every call without it; the CLI reads it from the same file
    store = Store(root / "state.db")
    zygote = Zygote(root) if config.zygote else None
    if zygote is not None:
        zygote.start()  # warm before the first scale-from-zero needs it
    revisions = Revisions()
    replicas = ReplicaSet(root, revisions, zygote)
    saved = None if config.mesh_etcd else StoreRegistries(store)  # placement in the platform's own store
    if saved is not None:
        store.mesh_prune()
    registries = _etcd_registries(config.mesh_etcd) if config.mesh_etcd else saved
    gateway = Gateway(revisions, config.domain, max_body_bytes=config.max_body_bytes, mesh_registry=registries)
    gateway_url = f"http://{config.host}:{config.gateway_port}"
    grpc_gateway = GrpcGateway(gateway)
    max_message = config.max_body_bytes
    grpc_server = GrpcH2Server(grpc_gateway.methods(), max_message, max_message, limits=limits_for(config.limits))
    try:
        await grpc_server.start(config.host, config.grpc_port)
    except OSError:
        raise PortInUse(
            f"the gateway gRPC port {config.host}:{config.grpc_port} is in use; choose another with --grpc-port"
        ) from None
    backend = LocalBackend(
        store, revisions, replicas, gateway, gateway_url, f"{config.host}:{config.grpc_port}", placements=saved
    )
    controller = Controller(store, backend)
    gateway.activate = backend.activate
    metrics = registry(revisions, gateway, backend.autoscaler.cold)
    api = ApiServer(
        store,
        lambda: render(metrics),
        ApiGuard(TokenFile(root), frozenset({config.api_host, *config.allowed_hosts})),
        lambda: backend.autoscaler.config.max_scale_limit or LOCAL_MAX_SCALE,
        instance,
    )
    # the gateway and the API on modelplane's HTTP/1.1 server (server/rest/h1.py), each on its bound socket
    http = [HttpServer(gateway, config.limits), HttpServer(api, config.limits)]
    await http[0].start(config.host, config.gateway_port, [gateway_sock])
    await http[1].start(config.api_host, config.api_port, [api_sock])
    with stop_event() as stop:  # the platform keeps its handlers through the shutdown
        tasks = [asyncio.create_task(controller.run())]
        info_path(root).write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "instance": instance,
                    "gateway": gateway_url,
                    "grpc": f"{config.host}:{config.grpc_port}",
                    "api": f"http://{_connectable(config.api_host)}:{config.api_port}",
                }
            )
        )
        log.info(
            "modelplane up: gateway %s, API http://%s:%d, home %s", gateway_url, config.api_host, config.api_port, root
        )
        try:
            await stop.wait()
        finally:
            controller.stop()
            await asyncio.gather(*(server.shutdown(5) for server in http), *tasks, return_exceptions=True)
            await gateway.close()
            await grpc_server.stop(grace=5)
            await grpc_gateway.close()
            if config.stop_replicas_on_exit:
                await replicas.stop_all()
            await replicas.close()
            if zygote is not None:
                zygote.close()
            store.close()
            with contextlib.suppress(FileNotFoundError):
                info_path(root).unlink()
