"""CLI: building a ModelServer from `modelplane serve` arguments (model dir, runtime, custom class)."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any

from modelplane.model.base import Model
from modelplane.protocol.errors import Forbidden, ModelNotFound
from modelplane.runtimes import detect_runtime, runtime_class
from modelplane.server.app import ModelServer
from modelplane.server.registry import check_model_name
from modelplane.server.settings import ServerSettings


def parse_extra_args(args: list[str]) -> dict[str, str]:
    """Unknown `--key value` / `--key=value` flags (e.g. a ServingRuntime's `--nthread 1`) as runtime options."""
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            key, eq, value = arg[2:].partition("=")
            if not eq:
                if i + 1 < len(args) and not args[i + 1].startswith("--"):
                    value = args[i + 1]
                    i += 1
                else:
                    value = "true"
            options[key.replace("-", "_")] = value
        i += 1
    return options


@functools.cache
def _accepts(cls: type[Model]) -> frozenset[str]:
    """The constructor parameters of a model class (read once per class: a repository creates thousands)."""
    return frozenset(inspect.signature(cls).parameters)


def build_model(cls: type[Model], name: str, path: Path | None, options: dict[str, Any]) -> Model:
    params = _accepts(cls)
    kwargs: dict[str, Any] = {}
    if "model_dir" in params and path is not None:
        kwargs["model_dir"] = path
    if "options" in params:
        kwargs["options"] = options
    return cls(name, **kwargs)


def _runtime_for(path: Path, runtime: str | None, model_class: str | None, options: dict[str, Any]) -> type[Model]:
    if model_class:
        import os
        import sys

        if os.getcwd() not in sys.path and "" not in sys.path:  # a module beside the user, as `python -m` finds it
            sys.path.insert(0, os.getcwd())
        return runtime_class(model_class)
    chosen = runtime or detect_runtime(path)
    if chosen is None:
        raise ValueError(f"cannot tell which runtime serves {path}; pass --runtime")
    return runtime_class(chosen, path, options)


def make_server(
    settings: ServerSettings,
    model_name: str,
    model_dir: str | None,
    runtime: str | None,
    model_class: str | None,
    options: dict[str, Any],
) -> ModelServer:
    path = Path(model_dir) if model_dir else None
    single = model_class is not None or path is None or path.is_file() or detect_runtime(path) is not None
    if single:
        cls = _runtime_for(path or Path("."), runtime, model_class, options)

        def recreate(name: str) -> Model:  # repository `load` after an `unload` brings the model back
            if name != model_name:
                raise ModelNotFound(name)
            return build_model(cls, name, path, options)

        return ModelServer(settings, [recreate(model_name)], factory=recreate)

    assert path is not None
    if not path.is_dir():
        raise ValueError(f"model directory {path} does not exist")

    def discover() -> list[str]:
        return sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))

    root = path.resolve()

    def factory(name: str) -> Model:
        sub = (path / check_model_name(name)).resolve()  # symlinks followed, then checked
        if root not in sub.parents:
            raise Forbidden(f"model {name} resolves outside the repository {path}")
        if not sub.is_dir():
            raise ModelNotFound(name)
        return build_model(_runtime_for(sub, runtime, None, options), name, sub, options)

    return ModelServer(settings, factory=factory, discover=discover, preload=discover(), locate=lambda n: path / n)
