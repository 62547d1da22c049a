"""CLI: the zygote process — it imports the model server, scikit-learn and the CLI once, then forks a replica
(`modelplane serve ...`) per request, so a replica starts in tens of milliseconds instead of re-importing for
seconds. Started and driven by the local backend (`backends/local/zygote.py`); it sits in the CLI layer because
what it runs are CLI commands.

Protocol: one JSON line per connection on a UNIX socket, {"argv": [...], "env": {...}, "log": path}; the answer
is {"pid": N}. `argv` is `modelplane` CLI arguments (e.g. ["serve", "--model_dir", ...]). Children start their
own session (so a process-group kill stops them and what they spawn) and are reaped here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from typing import Any

from modelplane.proctitle import set_title

WARM_IMPORTS = (
    "modelplane.cli.main",
    "modelplane.cli.serve",
    "modelplane.server.app",
    "modelplane.runtimes.sklearn",
    "modelplane.server.grpc.servicer",
    "modelplane.server.grpc.h2server",  # the replica's gRPC server (grpcio's with --grpc-server grpcio)
    "uvloop",
    "sklearn.svm",
    "sklearn.ensemble",
    "joblib",
    "typer._adapters",  # what the CLI's argument parsing pulls in (pydantic with it)
    "httptools",
    "modelplane.server.rest.listener",  # the replica's HTTP/1.1 server (uvicorn only with --http-server uvicorn)
    "encodings.idna",
)


def _reap(*_: Any) -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _child(request: dict[str, Any], cli: Any) -> None:
    """In the forked child: become the replica. Never returns."""
    code = 1
    try:
        os.setsid()
        fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.environ.update(request.get("env") or {})
        sys.argv = ["modelplane", *request["argv"]]
        set_title(request.get("title") or "modelplane replica")
        cli.main(args=request["argv"], prog_name="modelplane")  # what `python -m modelplane ARGV` runs
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _die_with(parent: int) -> None:
    """End this process when the platform that started it is gone (even after kill -9), checked each second by a
    thread (the kernel's PR_SET_PDEATHSIG fires when the starting *thread* ends, which here is a short-lived one).
    Replicas forked from here have no such thread: they outlive a crashed platform and the next one re-adopts them."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def serve(path: str, parent: int = 0) -> None:
    import importlib

    if parent:
        _die_with(parent)
    set_title(f"modelplane zygote {path}")

    for name in WARM_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    import gc

    import typer

    from modelplane.cli.main import app

    cli = typer.main.get_command(app)  # built once here: typer's signature introspection costs ~35 ms a replica
    gc.collect()
    gc.freeze()  # children start with nothing for the collector to walk, and the imported pages stay shared
    signal.signal(signal.SIGCHLD, _reap)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    while True:
        try:
            conn, _ = server.accept()
        except InterruptedError:
            continue
        with conn:
            try:
                request = json.loads(conn.makefile("rb").readline() or b"{}")
                if "argv" not in request:  # a liveness probe
                    conn.sendall(b'{"ok": true}\n')
                    continue
                pid = os.fork()
                if pid == 0:
                    server.close()
                    _child(request, cli)
                conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            except (OSError, ValueError):  # a client that went away or sent garbage: serve the next one
                continue


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
