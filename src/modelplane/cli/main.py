"""CLI: the typer app behind the `modelplane` console script."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from modelplane import __version__

app = typer.Typer(
    help="modelplane — fast, KServe-compatible model serving.", no_args_is_help=True, add_completion=False
)

_TRUE = {"true", "1", "yes", "y", "on", "t"}


def _show_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _global(
    home: Annotated[
        Path | None,
        typer.Option("--home", help="The platform's home (state, token, logs, cache); default $MODELPLANE_HOME"),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    """modelplane — fast, KServe-compatible model serving."""
    if home is not None:
        import os

        os.environ["MODELPLANE_HOME"] = str(home.expanduser().resolve())  # read by every command and its children


def _flag(value: str) -> bool:
    if value.lower() in _TRUE | {"false", "0", "no", "n", "off", "f"}:
        return value.lower() in _TRUE
    raise typer.BadParameter(f"expected a boolean, got {value!r}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def serve(
    ctx: typer.Context,
    storage_uri: Annotated[
        str | None,
        typer.Option(
            "--storage-uri",
            "--storage_uri",
            help="Pull the model from this URI: /path, file://, pvc://, http(s)://, s3://, gs://, "
            "https://ACCOUNT.blob.core.windows.net/..., hf://",
        ),
    ] = None,
    model_dir: Annotated[
        str | None,
        typer.Option("--model-dir", "--model_dir", help="Model file, model directory or repository"),
    ] = None,
    model_name: Annotated[str, typer.Option("--model-name", "--model_name")] = "model",
    runtime: Annotated[
        str | None, typer.Option(help="sklearn | xgboost | lightgbm | pkg.module:Class (default: detect)")
    ] = None,
    model_class: Annotated[
        str | None,
        typer.Option("--model-class", "--model_class", help="Custom Model subclass, pkg.module:Class"),
    ] = None,
    host: Annotated[str, typer.Option(help="Bind address (0.0.0.0 to serve other machines)")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option("--http-port", "--http_port")] = 8080,
    grpc_port: Annotated[int, typer.Option("--grpc-port", "--grpc_port")] = 8081,
    enable_grpc: Annotated[str, typer.Option("--enable-grpc", "--enable_grpc")] = "true",
    workers: int = 1,
    max_threads: Annotated[int | None, typer.Option("--max-threads", "--max_threads", "--max_asyncio_workers")] = None,
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes")] = 64 * 2**20,
    grpc_max_message_bytes: Annotated[
        int, typer.Option("--grpc-max-message-bytes", help="gRPC message limit, both directions")
    ] = 64 * 2**20,
    grpc_max_send: Annotated[int | None, typer.Option("--grpc_max_send_message_length", hidden=True)] = None,
    grpc_max_receive: Annotated[int | None, typer.Option("--grpc_max_receive_message_length", hidden=True)] = None,
    offload: Annotated[str, typer.Option(help="Sync model code: auto | thread | inline")] = "auto",
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log")] = False,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
    enable_batcher: Annotated[
        bool, typer.Option("--enable-batcher", "--enable_batcher", help="Adaptive batching (all protocols)")
    ] = False,
    max_batch_size: Annotated[
        int, typer.Option("--max-batch-size", "--max_batch_size", "--max-batchsize", help="Rows per batch")
    ] = 32,
    max_latency_ms: Annotated[
        float, typer.Option("--max-latency", "--max_latency", help="Most a request waits for a batch, ms")
    ] = 5.0,
    batch_preferred_sizes: Annotated[
        str, typer.Option("--batch-preferred-sizes", help="Comma list of preferred batch sizes")
    ] = "",
    batch_timeout: Annotated[
        float | None, typer.Option("--batch-timeout", help="Seconds a batched request may take")
    ] = None,
    max_concurrency: Annotated[
        int, typer.Option("--max-concurrency", help="Requests in a model at once per worker (0: unlimited)")
    ] = 0,
    max_queue: Annotated[
        int, typer.Option("--max-queue", help="Requests waiting beyond --max-concurrency before 429")
    ] = 0,
    log_url: Annotated[str | None, typer.Option("--log-url", "--logger-url", help="Payload logger sink URL")] = None,
    log_mode: Annotated[str, typer.Option("--log-mode", help="all | request | response")] = "all",
    log_metadata_headers: Annotated[
        str, typer.Option("--metadata-headers", "--log-metadata-headers", help="Comma list of headers to log")
    ] = "",
    source_uri: Annotated[str | None, typer.Option("--source-uri", help="ce-source of logged events")] = None,
    log_queue_size: Annotated[int, typer.Option("--log-queue-size", help="Events held for a slow sink")] = 1000,
    inference_service: Annotated[str, typer.Option("--inference-service", help="ce-inferenceservicename")] = "",
    namespace: Annotated[str, typer.Option("--namespace", help="ce-namespace")] = "",
    component: Annotated[str, typer.Option("--component", help="ce-component")] = "predictor",
    endpoint: Annotated[str, typer.Option("--endpoint", help="ce-endpoint (default, canary)")] = "",
    graceful_timeout: Annotated[
        float, typer.Option("--graceful-timeout", help="Seconds in-flight requests get on shutdown")
    ] = 30.0,
    model_control_mode: Annotated[
        str,
        typer.Option("--model-control-mode", "--model_control_mode", help="explicit | none (refuse repository load)"),
    ] = "explicit",
    max_connections: Annotated[
        int, typer.Option("--max-connections", help="Open REST connections before 503 (0: the fd limit)")
    ] = 1000,
    header_timeout: Annotated[
        float, typer.Option("--header-timeout", help="Seconds a client has to send a request's headers")
    ] = 10.0,
    fork_after_load: Annotated[
        bool,
        typer.Option("--fork-after-load/--load-per-worker", help="--workers: load once, share memory copy-on-write"),
    ] = False,
) -> None:
    """Serve one model (or a repository of models) over REST (V1, V2) and gRPC (V2)."""
    from modelplane.cli.serve import make_server, parse_extra_args
    from modelplane.model.options import Batching, Limits
    from modelplane.server.payload_log import LoggerConfig
    from modelplane.server.settings import ServerSettings

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per payload-log delivery
    settings = ServerSettings(
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        enable_grpc=_flag(enable_grpc),
        workers=workers,
        max_body_bytes=max_body_bytes,
        grpc_max_send_bytes=grpc_max_send or grpc_max_message_bytes,
        grpc_max_receive_bytes=grpc_max_receive or grpc_max_message_bytes,
        max_threads=max_threads,
        offload=offload,
        access_log=access_log,
        log_level=log_level,
        graceful_timeout_s=graceful_timeout,
        fork_after_load=fork_after_load,
        model_control_mode=model_control_mode,
        max_connections=max_connections,
        header_timeout_s=header_timeout,
    )
    try:
        if enable_batcher:
            preferred = tuple(int(p) for p in batch_preferred_sizes.split(",") if p.strip())
            settings.batching = Batching(max_batch_size, max_latency_ms, preferred, batch_timeout)
        settings.limits = Limits(max_concurrency, max_queue)
        if log_url:
            settings.logger = LoggerConfig(
                url=log_url,
                mode=log_mode,
                metadata_headers=tuple(h.strip() for h in log_metadata_headers.split(",") if h.strip()),
                source_uri=source_uri or f"http://localhost:{http_port}/",
                inference_service=inference_service,
                namespace=namespace,
                component=component,
                endpoint=endpoint,
                queue_size=log_queue_size,
            )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    options = parse_extra_args(list(ctx.args))
    if storage_uri:
        model_dir = str(_pull(storage_uri))

    def build():  # noqa: ANN202 - a ModelServer; imported lazily
        return make_server(settings, model_name, model_dir, runtime, model_class, options)

    try:
        server = build()  # fail fast on bad arguments, also before forking workers
    except (ValueError, ImportError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if workers > 1:
        from modelplane.server.workers import Supervisor

        del server  # each worker builds its own after the fork
        Supervisor(settings, build).run()
    else:
        server.run()


@app.command()
def quickstart(
    http_port: Annotated[int, typer.Option("--http-port", "--port", help="Gateway (or server) port")] = 8080,
    grpc_port: Annotated[int, typer.Option("--grpc-port")] = 8081,
    api_port: Annotated[int, typer.Option("--api-port")] = 8090,
    server_only: Annotated[bool, typer.Option("--server-only", help="Just the model server, no control plane")] = False,
) -> None:
    """Bring up the platform, apply KServe's sklearn-iris sample and show it answering through the gateway
    (or, with --server-only, serve the iris model directly)."""
    from modelplane.cli.quickstart import run, run_platform

    logging.basicConfig(level="WARNING", format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if server_only:
        run(http_port, grpc_port)
    else:
        run_platform(http_port, api_port, grpc_port)


def _pull(uri: str) -> Path:
    from modelplane.cli.progress import RichProgress
    from modelplane.storage import StorageError, download
    from modelplane.storage.redact import redact

    try:
        with RichProgress(redact(uri)) as progress:
            return download(uri, progress=progress)
    except StorageError as exc:
        typer.echo(f"error: cannot pull {redact(uri)}: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command("storage-initializer")
def storage_initializer(pairs: Annotated[list[str], typer.Argument(help="SRC_URI DEST [SRC_URI DEST ...]")]) -> None:
    """Download each SRC_URI into DEST (argument-compatible with KServe's storage-initializer entrypoint)."""
    from modelplane.cli.progress import RichProgress
    from modelplane.storage import StorageError, download
    from modelplane.storage.redact import redact

    if len(pairs) % 2:
        typer.echo("error: expected pairs of SRC_URI DEST", err=True)
        raise typer.Exit(2)
    for src, dest in zip(pairs[::2], pairs[1::2], strict=True):
        try:
            with RichProgress(redact(src)) as progress:
                download(src, dest, progress=progress)
        except StorageError as exc:
            typer.echo(f"error: cannot pull {redact(src)} into {dest}: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(f"{redact(src)} -> {dest}")


cache_app = typer.Typer(help="The node-local model cache ($MODELPLANE_CACHE_DIR, default $MODELPLANE_HOME/cache).")
app.add_typer(cache_app, name="cache")


@cache_app.command("ls")
def cache_ls() -> None:
    """List cached models."""
    from modelplane.storage.cache import Cache

    for e in Cache().entries():
        typer.echo(f"{e.key}  {e.size:>12,d}  {e.uri}  {e.version}")


@cache_app.command("prune")
def cache_prune(
    unused_days: Annotated[float, typer.Option("--unused-days", help="Only entries unused this long")] = 0.0,
) -> None:
    """Remove cached models (all, or those unused for --unused-days)."""
    from modelplane.storage.cache import Cache

    removed = Cache().prune(unused_days * 86400)
    typer.echo(f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'}")


def _register_platform() -> None:
    from modelplane.cli.platform import register

    register(app)


_register_platform()


@app.command()
def version() -> None:
    """Print the modelplane version."""
    typer.echo(__version__)


def main() -> None:
    app(args=sys.argv[1:], prog_name="modelplane")
