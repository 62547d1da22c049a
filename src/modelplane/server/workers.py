"""Server: N worker processes sharing the REST socket (inherited) and the gRPC port (SO_REUSEPORT), supervised.

The parent binds the REST socket once and forks; by default each child builds its own ModelServer after the fork
(no grpc threads or event loop exist in the parent, so forking is safe), loads the model and serves. With
`fork_after_load` the parent builds the server and loads the models once, then forks: the children share the
model's memory copy-on-write (the parent's loop and model threads are gone before the fork; each child starts
fresh ones). A child that dies is replaced; SIGTERM/SIGINT to the parent stop every child.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from modelplane.server.app import ModelServer
from modelplane.server.settings import ServerSettings

log = logging.getLogger("modelplane.workers")


def bind_rest_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    def __init__(self, settings: ServerSettings, build: Callable[[], ModelServer]) -> None:
        self.settings = settings
        self.build = build
        self.children: dict[int, int] = {}  # pid -> worker index
        self.stopping = False
        self.loaded: ModelServer | None = None  # built and loaded in the parent (fork_after_load)

    def _spawn(self, index: int, sock: socket.socket) -> None:
        pid = os.fork()
        if pid == 0:  # child
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                server = self.loaded or self.build()
                if self.loaded is not None:
                    server.after_fork()
                server.run(sockets=[sock], reuse_port=True)
            except BaseException:  # report, then leave without running the parent's cleanup
                log.exception("worker %d failed", index)
                code = 1
            os._exit(code)
        self.children[pid] = index
        log.info("worker %d started (pid %d)", index, pid)

    def _stop(self, *_: Any) -> None:
        self.stopping = True
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def run(self) -> None:
        sock = bind_rest_socket(self.settings.host, self.settings.http_port)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        if self.settings.fork_after_load:
            self.loaded = self.build()
            self.loaded.load_before_fork()
        for index in range(self.settings.workers):
            self._spawn(index, sock)
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:  # a signal arrived; loop to reap
                continue
            index = self.children.pop(pid, None)
            if index is None:
                continue
            if not self.stopping:
                log.warning(
                    "worker %d (pid %d) exited with %s; starting a new one",
                    index,
                    pid,
                    os.waitstatus_to_exitcode(status),
                )
                time.sleep(0.2)  # do not spin if a worker dies at start
                self._spawn(index, sock)
        sock.close()
