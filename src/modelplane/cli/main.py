"""CLI: the typer app behind the `modelplane` console script."""

from __future__ import annotations

import inspect
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from modelplane import __version__

app = typer.Typer(
    help="modelplane — fast, KServe-compatible model serving.", no_args_is_help=True, add_completion=False
)


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
    **server: Any,  # the server's options: one per field of ServerSettings (cli/serve_options.py)
) -> None:
    """Serve one model (or a repository of models) over REST (V1, V2) and gRPC (V2)."""
    from modelplane.cli.serve import make_server, parse_extra_args
    from modelplane.cli.serve_options import settings as settings_from

    try:
        settings = settings_from(server)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per payload-log delivery
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
    if settings.workers > 1:
        from modelplane.server.workers import Supervisor

        del server  # each worker builds its own after the fork
        Supervisor(settings, build).run()
    else:
        server.run()


def _register_serve() -> None:
    """`serve`'s signature: its own parameters, then one option per server setting (generated, not repeated)."""
    from modelplane.cli.serve_options import parameters

    own = [p for p in inspect.signature(serve, eval_str=True).parameters.values() if p.kind is not p.VAR_KEYWORD]
    serve.__signature__ = inspect.Signature([*own, *parameters()])  # type: ignore[attr-defined]
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(serve)


_register_serve()


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


@app.command("puller")
def puller(
    config_dir: Annotated[str, typer.Option("--config-dir", help="Where models.json is (a ConfigMap volume)")],
    model_dir: Annotated[str, typer.Option("--model-dir", help="Where each model is pulled, one directory each")],
    server: Annotated[str, typer.Option("--server", help="The multi-model server's URL (V2 repository API)")] = (
        "http://127.0.0.1:8080"
    ),
    interval: Annotated[float, typer.Option("--interval", help="Seconds between reads of the model list")] = 1.0,
) -> None:
    """Follow a TrainedModel list: pull each model, swap in changed ones, remove dropped ones, and have the server
    load or unload them (KServe's agent with --enable-puller; the Kubernetes backend runs it beside a multi-model
    predictor)."""
    import logging

    from modelplane.storage.puller import main as run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(config_dir, model_dir, server, interval)


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
