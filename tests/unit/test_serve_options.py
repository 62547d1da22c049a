"""Server options are declared once (on ServerSettings' fields): the CLI parses what `argv()` writes back into the
same settings, every field with flags is an option of `modelplane serve`, and KServe's spellings still parse."""

from __future__ import annotations

from dataclasses import fields

import pytest
import typer

from modelplane.cli.main import app
from modelplane.cli.serve_options import settings as settings_from
from modelplane.model.fields import FLAGS, GROUP
from modelplane.model.options import Batching, Limits
from modelplane.server.settings import LoggerConfig, ServerSettings, argv, finish

OWN = {"storage_uri", "model_dir", "model_name", "runtime", "model_class"}


def parse(args: list[str]) -> ServerSettings:
    command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    ctx = command.make_context("serve", list(args))
    return settings_from({k: v for k, v in ctx.params.items() if k not in OWN})


@pytest.mark.parametrize(
    "settings",
    [
        ServerSettings(),
        ServerSettings(host="0.0.0.0", http_port=9000, enable_grpc=False, workers=2, max_threads=3),
        ServerSettings(access_log=True, fork_after_load=True, offload="inline", model_control_mode="none"),
        ServerSettings(batching=Batching(8, 2.5, (1, 4), 3.0), limits=Limits(4, 16)),
        ServerSettings(
            logger=LoggerConfig(
                url="http://sink:8080/x", mode="request", metadata_headers=("a", "b"), inference_service="iris"
            )
        ),
        ServerSettings(grpc_max_message_bytes=1024, grpc_max_send_bytes=2048, header_timeout_s=1.5),
    ],
)
def test_what_argv_writes_the_cli_reads_back_as_the_same_settings(settings: ServerSettings) -> None:
    assert parse(argv(settings)) == finish(settings)


def test_every_flagged_field_is_a_serve_option() -> None:
    command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    names = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    declared: list[str] = []
    for f in fields(ServerSettings):
        kinds = [f.metadata[GROUP]] if GROUP in f.metadata else []
        declared += [flag for flag in f.metadata.get(FLAGS, ()) for flag in flag.split("/")]
        for kind in kinds:
            declared += [flag for g in fields(kind) for flag in g.metadata.get(FLAGS, ())]
    assert declared and set(declared) <= names


def test_kserve_spellings_and_values_parse() -> None:
    s = parse(["--http_port", "9000", "--enable_grpc", "false", "--max_asyncio_workers", "4", "--enable_batcher"])
    assert (s.http_port, s.enable_grpc, s.max_threads, s.batching) == (9000, False, 4, Batching())
    with pytest.raises(ValueError, match="expected a boolean"):
        parse(["--enable_grpc", "maybe"])
    with pytest.raises(ValueError, match="logger mode"):
        parse(["--log-url", "http://sink", "--log-mode", "everything"])
    assert parse(["--log-url", "http://sink"]).logger.source_uri == "http://localhost:8080/"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="--http-server must be one of modelplane, uvicorn"):
        parse(["--http-server", "gunicorn"])
    assert parse(["--http-server", "uvicorn"]).http_server == "uvicorn"


def test_every_rest_server_name_has_an_implementation() -> None:
    from modelplane.server.app import _REST_SERVERS
    from modelplane.server.settings import HTTP_SERVERS

    assert set(_REST_SERVERS) == set(HTTP_SERVERS)


def test_serve_keeps_its_own_options_and_their_kserve_spellings() -> None:
    command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    args = ["--model_dir", "/m", "--model_name", "iris", "--storage_uri", "s3://b/m", "--model_class", "p.m:C"]
    params = command.make_context("serve", [*args, "--runtime", "sklearn"]).params
    assert {k: params[k] for k in OWN} == {
        "model_dir": "/m",
        "model_name": "iris",
        "storage_uri": "s3://b/m",
        "model_class": "p.m:C",
        "runtime": "sklearn",
    }
