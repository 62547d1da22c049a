"""Server: process lifecycle — build registry and data plane, load models, run REST and gRPC on one loop."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from modelplane.model.base import Model
from modelplane.protocol.errors import ModelplaneError
from modelplane.server.dataplane import DataPlane
from modelplane.server.metrics import Metrics
from modelplane.server.multimodel import ModelCache
from modelplane.server.payload_log import PayloadLogger
from modelplane.server.registry import Discover, ModelFactory, ModelRegistry
from modelplane.server.rest.app import RestApp
from modelplane.server.rest.limits import ConnectionLimits
from modelplane.server.settings import ServerSettings
from modelplane.server.signals import stop_event

log = logging.getLogger("modelplane.server")


class GrpcFrontEnd(Protocol):
    """A started gRPC server, whichever implementation (--grpc-server)."""

    async def stop(self, grace: float) -> Any: ...


class ModelServer:
    """One model-server process. Nothing happens until `run()` / `serve()` is called."""

    def __init__(
        self,
        settings: ServerSettings,
        models: Iterable[Model] = (),
        factory: ModelFactory | None = None,
        discover: Discover | None = None,
        preload: Iterable[str] = (),
        locate: Callable[[str], Path | None] | None = None,
    ) -> None:
        """`preload`: repository models loaded at start — or, with the model cache on, registered in standby and
        loaded on their first request; `locate` gives their files, whose size the cache charges before a load."""
        self.settings = settings
        self.metrics = Metrics(per_model=settings.model_cache is None)
        self.executor = ThreadPoolExecutor(settings.thread_count(), thread_name_prefix="model")
        self.registry = ModelRegistry(
            self.executor,
            self.metrics,
            factory,
            settings.offload,
            discover,
            settings.batching,
            settings.limits,
            settings.model_control_mode,
        )
        for model in models:
            self.registry.register(model)
        self._preload = list(preload)
        self.registry.expect(self.registry.names())  # the models it was started for (a repository's may come and go)
        self.cache: ModelCache | None = None
        if settings.model_cache is not None:
            self.cache = ModelCache(self.registry, settings.model_cache, self.metrics, locate or (lambda _: None))
            for name in self.registry.names():
                self.cache.register(name, pinned=True)  # given as objects: loaded at start, never evicted
            for name in self._preload:
                self.cache.register(name)
        self.payload_log = PayloadLogger(settings.logger, self.metrics) if settings.logger else None
        self.dataplane = DataPlane(self.registry, settings.server_name, self.metrics, self.payload_log, self.cache)
        self.rest_app = RestApp(self.dataplane, self.metrics, settings.max_body_bytes)
        self._loaded = False

    async def load_models(self) -> None:
        if self._loaded:  # already loaded in the parent before the fork (--fork-after-load)
            return
        self._loaded = True
        if self.cache is not None:
            await self.cache.preload()
            log.info("%d models registered, %d loaded", len(self.cache), len(self.cache.lru))
            return
        for name in [*self.registry.names(), *self._preload]:
            try:
                await self.registry.load(name)
                log.info("model %s is ready", name)
            except ModelplaneError as exc:
                log.error("model %s failed to load: %s", name, exc.message)

    def load_before_fork(self) -> None:
        """Load every model in this (parent) process, leaving no thread or event loop behind, ready to fork."""
        asyncio.run(self.load_models())
        self.executor.shutdown(wait=True)
        gc.collect()
        gc.freeze()  # the collector never writes to the loaded objects, so their pages stay shared after fork

    def after_fork(self) -> None:
        """In a child forked after load_before_fork: fresh model threads (the parent's are gone)."""
        self.executor = ThreadPoolExecutor(self.settings.thread_count(), thread_name_prefix="model")
        self.registry.set_executor(self.executor)

    async def serve(self, sockets: list[socket.socket] | None = None, reuse_port: bool = False) -> None:
        """Serve until stopped. `sockets`: an already bound REST socket (workers); `reuse_port`: bind gRPC with
        SO_REUSEPORT so that several worker processes share its port."""
        s = self.settings
        await self.load_models()
        # Everything alive now (frameworks, weights, servers) lives for the whole process: take it out of the
        # collector's generations so per-request garbage collections stay short.
        gc.collect()
        gc.freeze()
        if self.payload_log is not None:
            await self.payload_log.start()
        grpc_server = await _GRPC_SERVERS[s.grpc_server](self, reuse_port) if s.enable_grpc else None
        try:
            await _REST_SERVERS[s.http_server](self, sockets)
        finally:
            if grpc_server is not None:
                await grpc_server.stop(grace=s.graceful_timeout_s)
            if self.payload_log is not None:
                await self.payload_log.close()
            for name in list(self.registry.names()):
                try:
                    await self.registry.unload(name)
                except Exception:  # shutting down: report and keep unloading the rest
                    log.exception("unloading %s failed", name)
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def _grpc_modelplane(self, reuse_port: bool) -> GrpcFrontEnd:
        """modelplane's own HTTP/2 gRPC server (grpc/h2server.py)."""
        from modelplane.server.grpc.h2frames import limits_for
        from modelplane.server.grpc.h2server import GrpcH2Server
        from modelplane.server.grpc.servicer import SERVICE, Servicer, methods

        s = self.settings
        limits = limits_for(self._limits())
        table = methods(Servicer(self.dataplane))
        server = GrpcH2Server(table, s.grpc_send_limit, s.grpc_receive_limit, SERVICE, limits)
        await server.start(s.host, s.grpc_port, reuse_port)
        log.info("gRPC listening on %s:%d", s.host, server.ports[0] if server.ports else s.grpc_port)
        return server

    async def _grpc_grpcio(self, reuse_port: bool) -> GrpcFrontEnd:
        """grpcio's server (grpc.aio) with the same methods (grpc/servicer.py)."""
        from modelplane.server.grpc.servicer import build_server

        s = self.settings
        server = build_server(self.dataplane, s.grpc_send_limit, s.grpc_receive_limit, reuse_port)
        host = "[::]" if s.host in ("0.0.0.0", "::") else s.host
        server.add_insecure_port(f"{host}:{s.grpc_port}")
        await server.start()
        log.info("gRPC listening on %s:%d (grpcio)", s.host, s.grpc_port)
        return server

    def _limits(self) -> ConnectionLimits:
        s = self.settings
        return ConnectionLimits(s.max_connections, s.header_timeout_s, s.timeout_keep_alive)

    async def _serve_modelplane(self, sockets: list[socket.socket] | None) -> None:
        """modelplane's own HTTP/1.1 server (rest/listener.py) until SIGTERM or SIGINT, then a graceful drain."""
        from modelplane.server.rest.listener import HttpServer

        s = self.settings
        http = HttpServer(self.rest_app, self._limits(), access_log=s.access_log)
        await http.start(s.host, s.http_port, sockets)
        log.info("REST listening on http://%s:%d", s.host, http.ports[0] if http.ports else s.http_port)
        try:
            with stop_event() as stop:
                await stop.wait()
        finally:  # the handlers are gone: a second Ctrl-C during the drain ends the process at once
            log.info("shutting down: letting requests in flight finish (up to %.0f s)", s.graceful_timeout_s)
            await http.shutdown(s.graceful_timeout_s)

    async def _serve_uvicorn(self, sockets: list[socket.socket] | None) -> None:
        """uvicorn's server with its httptools protocol and the same limits (rest/guard.py)."""
        import uvicorn

        from modelplane.server.rest.guard import guarded_protocol

        s = self.settings
        config = uvicorn.Config(
            self.rest_app,
            host=s.host,
            port=s.http_port,
            loop="none",
            http=guarded_protocol(self._limits()),
            ws="none",  # no WebSocket endpoints: do not import a WebSocket library
            lifespan="off",
            access_log=s.access_log,
            log_level=s.log_level,
            timeout_keep_alive=s.timeout_keep_alive,
            log_config=None,
            proxy_headers=False,  # the data plane never reads the client address; skip the middleware
            server_header=False,
            timeout_graceful_shutdown=int(s.graceful_timeout_s),
        )
        await uvicorn.Server(config).serve(sockets=sockets)

    def run(self, sockets: list[socket.socket] | None = None, reuse_port: bool = False) -> None:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
            asyncio.run(self.serve(sockets, reuse_port))
        else:
            uvloop.run(self.serve(sockets, reuse_port))


# REST server implementations by name (--http-server), each imported only when chosen.
_REST_SERVERS = {"modelplane": ModelServer._serve_modelplane, "uvicorn": ModelServer._serve_uvicorn}
# gRPC server implementations by name (--grpc-server): each started server has `await stop(grace=...)`.
_GRPC_SERVERS = {"modelplane": ModelServer._grpc_modelplane, "grpcio": ModelServer._grpc_grpcio}
