"""CLI: the platform's lifecycle — up (foreground or --detach, ports bound before it says so), down, token."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from modelplane.cli.client import healthy, pid_alive


def up(
    port: Annotated[int, typer.Option("--port", help="Gateway port")] = 8080,
    api_port: Annotated[int, typer.Option("--api-port", help="Control-plane API port")] = 8090,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="Gateway gRPC port")] = 8081,
    host: Annotated[str, typer.Option("--host", help="Gateway bind address (HTTP and gRPC)")] = "127.0.0.1",
    api_host: Annotated[
        str,
        typer.Option("--api-host", help="Control-plane API bind address (whoever reaches it with the token runs code)"),
    ] = "127.0.0.1",
    api_allowed_host: Annotated[
        list[str] | None, typer.Option("--api-allowed-host", help="Host header the API accepts besides loopback")
    ] = None,
    file_root: Annotated[
        list[Path] | None,
        typer.Option("--file-root", help="Directories local storageUris may name (default: $HOME and the home)"),
    ] = None,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", help="Gateway request body / gRPC message limit")
    ] = 64 * 2**20,
    max_connections: Annotated[
        int, typer.Option("--max-connections", help="Open connections per port before 503 (0: no cap)")
    ] = 1000,
    header_timeout: Annotated[
        float, typer.Option("--header-timeout", help="Seconds a client has to send a request's headers")
    ] = 10.0,
    mesh_etcd: Annotated[
        str, typer.Option("--mesh-etcd", help="etcd URL: share multi-model placement with other platforms")
    ] = "",
    domain: str = "example.com",
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background")] = False,
) -> None:
    """Start the control plane and the gateway (foreground, or in the background with --detach)."""
    import asyncio
    import logging

    from modelplane.backends.local.platform import PlatformConfig, read_info, serve
    from modelplane.backends.local.store import home

    info = read_info()
    if info is not None and pid_alive(int(info["pid"])):  # type: ignore[call-overload]
        typer.echo(f"already up (pid {info['pid']}): gateway {info['gateway']}, API {info['api']}")
        return
    if detach:
        root = home()
        root.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "modelplane",
            "up",
            "--port",
            str(port),
            "--api-port",
            str(api_port),
            "--grpc-port",
            str(grpc_port),
            "--host",
            host,
            "--api-host",
            api_host,
            "--domain",
            domain,
            "--max-body-bytes",
            str(max_body_bytes),
            "--max-connections",
            str(max_connections),
            "--header-timeout",
            str(header_timeout),
        ]
        argv += [a for h in api_allowed_host or [] for a in ("--api-allowed-host", h)]
        argv += [a for r in file_root or [] for a in ("--file-root", str(r))]
        argv += ["--mesh-etcd", mesh_etcd] if mesh_etcd else []
        log_path = root / "platform.log"
        start = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as out:
            child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if child.poll() is not None:  # it could not start: say why, from its own log
                lines = log_path.read_bytes()[start:].decode(errors="replace").strip().splitlines()
                reason = next(
                    (line for line in reversed(lines) if line.startswith("error:")), lines[-1] if lines else ""
                )
                typer.echo(reason if reason.startswith("error:") else f"error: the platform exited: {reason}", err=True)
                raise typer.Exit(1)
            info = read_info()
            if info is not None and info.get("pid") == child.pid and healthy(str(info["api"]), info.get("instance")):
                typer.echo(f"modelplane is up: gateway {info['gateway']}, API {info['api']}, home {root}")
                return
            time.sleep(0.1)
        typer.echo(f"error: the platform did not start; see {log_path}", err=True)
        raise typer.Exit(1)
    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from modelplane.server.rest.limits import ConnectionLimits

    roots = file_root or [Path.home(), home()]
    os.environ["MODELPLANE_FILE_ROOTS"] = os.pathsep.join(str(r) for r in roots)  # read by the storage layer
    config = PlatformConfig(
        host=host,
        gateway_port=port,
        api_host=api_host,
        api_port=api_port,
        grpc_port=grpc_port,
        domain=domain,
        max_body_bytes=max_body_bytes,
        limits=ConnectionLimits(max_connections=max_connections, header_timeout_s=header_timeout),
        allowed_hosts=tuple(api_allowed_host or ()),
        mesh_etcd=mesh_etcd,
    )
    from modelplane.backends.local.platform import PortInUse
    from modelplane.backends.local.store import StoreError

    try:
        asyncio.run(serve(config))
    except (PortInUse, StoreError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def down() -> None:
    """Stop the platform and every replica it runs."""
    from modelplane.backends.local.platform import info_path, read_info

    info = read_info()
    if info is None:
        typer.echo("not up")
        return
    if not pid_alive(int(info["pid"])):  # type: ignore[call-overload]
        info_path().unlink(missing_ok=True)  # killed (kill -9): its zygote follows it within a second by itself
        typer.echo(f"not up (process {info['pid']} is gone; removed its stale state)")
        return
    pid = int(info["pid"])  # type: ignore[call-overload]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    typer.echo("modelplane is down")


def token(
    action: Annotated[str, typer.Argument(help="rotate | path")],
) -> None:
    """Rotate the control-plane API's bearer token (the old one stops working at once), or print its file."""
    from modelplane.backends.local.auth import rotate_token, token_path
    from modelplane.backends.local.store import home

    if action == "rotate":
        rotate_token(home())
        typer.echo(f"new token written to {token_path(home())} (mode 0600); the old one no longer works")
    elif action == "path":
        typer.echo(str(token_path(home())))
    else:
        raise typer.BadParameter(f"unknown action {action!r}: rotate | path")


def register(app: typer.Typer) -> None:
    from modelplane.cli import kubectl
    from modelplane.cli.kube import operator, render

    for fn in (
        up,
        down,
        kubectl.apply,
        kubectl.get,
        kubectl.describe,
        kubectl.delete,
        kubectl.logs,
        kubectl.predict,
        token,
        render,
        operator,
    ):
        app.command()(fn)
