"""Compatibility: KServe's `ModelServer` and `model_server.parser`. `ModelServer().start([model, ...])` reads the
command line as `modelplane serve` does (KServe's flag spellings: `--http_port`, `--grpc_port`, `--workers`,
`--enable_grpc`, `--max_asyncio_workers`, …), takes `--predictor_host` / `--predictor_protocol` for transformers,
and serves the given models with modelplane's server. Unlike KServe it binds 127.0.0.1 unless `--host` says
otherwise (in a container: `--host 0.0.0.0`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from modelplane.compat.kserve import model as _model


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes", "y", "on", "t")


def build_parser() -> argparse.ArgumentParser:
    """KServe's model-server arguments and defaults, for `argparse.ArgumentParser(parents=[model_server.parser])`."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--http_port", default=8080, type=int)
    p.add_argument("--grpc_port", default=8081, type=int)
    p.add_argument("--workers", default=1, type=int)
    p.add_argument("--max_threads", default=4, type=int)
    p.add_argument("--max_asyncio_workers", default=None, type=int)
    p.add_argument("--enable_grpc", default=True, type=_truthy)
    p.add_argument("--enable_docs_url", default=False, type=_truthy)
    p.add_argument("--enable_latency_logging", default=True, type=_truthy)
    p.add_argument("--configure_logging", default=True, type=_truthy)
    p.add_argument("--log_config_file", default=None, type=str)
    p.add_argument("--access_log_format", default=None, type=str)
    p.add_argument("--model_name", default="model", type=str)
    p.add_argument("--predictor_host", default=None, type=str)
    p.add_argument("--protocol", default="v1", type=str)
    p.add_argument("--predictor_protocol", default="v1", type=str)
    p.add_argument("--predictor_use_ssl", default=False, type=_truthy)
    p.add_argument("--predictor_request_timeout_seconds", default=600, type=int)
    p.add_argument("--predictor_request_retries", default=0, type=int)
    p.add_argument("--enable_predictor_health_check", default=False, type=_truthy)
    p.add_argument("--grpc_max_send_message_length", default=None, type=int)
    p.add_argument("--grpc_max_receive_message_length", default=None, type=int)
    p.add_argument("--ssl_certfile", default=None, type=str)
    p.add_argument("--ssl_keyfile", default=None, type=str)
    return p


def __getattr__(name: str) -> Any:
    if name == "parser":  # built when a model script asks for it, not when this module is imported
        return build_parser()
    raise AttributeError(name)


class ModelServer:
    """KServe's `ModelServer(http_port=..., grpc_port=..., workers=..., enable_grpc=..., ...)`: arguments given here
    win over the command line."""

    def __init__(self, **kwargs: Any) -> None:
        self.overrides = {k: v for k, v in kwargs.items() if v is not None}

    def start(self, models: list[Any]) -> None:
        from modelplane.cli.serve_options import from_argv
        from modelplane.server.app import ModelServer as Server

        argv = sys.argv[1:]
        settings = from_argv(argv)
        for key in ("http_port", "grpc_port", "workers", "enable_grpc"):
            if key in self.overrides:
                setattr(settings, key, self.overrides[key])
        known, _ = build_parser().parse_known_args(argv)
        if known.predictor_host:
            _model._server_config = _model.PredictorConfig(
                known.predictor_host,
                known.predictor_protocol,
                known.predictor_use_ssl,
                known.predictor_request_timeout_seconds,
                known.predictor_request_retries,
                known.enable_predictor_health_check,
            )
        for model in models:
            if not model.ready:
                model.load()
        if settings.workers > 1:
            from modelplane.server.workers import Supervisor

            Supervisor(settings, lambda: Server(settings, list(models))).run()
        else:
            Server(settings, list(models)).run()
