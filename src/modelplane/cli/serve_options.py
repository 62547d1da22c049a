"""CLI: `modelplane serve`'s server options, generated from the fields of ServerSettings and its groups — each
option is declared once, on its field (model/fields.py); this module turns fields into typer parameters and the
parsed values back into settings."""

from __future__ import annotations

import inspect
from dataclasses import MISSING, Field, fields
from typing import Annotated, Any, get_type_hints

import typer

from modelplane.model.fields import FLAGS, GROUP
from modelplane.server.settings import ServerSettings, finish

SEP = "__"  # a group field's parameter: "<group>__<field>"


def _param(name: str, f: Field[Any], hint: Any) -> inspect.Parameter:
    meta = f.metadata
    default = None if f.default is MISSING else f.default
    if meta.get("parse") is not None:  # read as text, parsed after typer (comma lists, true/false)
        hint, default = (str | None), (None if default is None else (meta.get("show") or str)(default))
    info = typer.Option(*meta[FLAGS], help=meta.get("help") or None, hidden=bool(meta.get("hidden")))
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[hint, info])


def parameters() -> list[inspect.Parameter]:
    """One typer parameter per flagged field of ServerSettings; a group contributes its switch and its fields."""
    out: list[inspect.Parameter] = []
    hints = get_type_hints(ServerSettings)
    for f in fields(ServerSettings):
        group = f.metadata.get(GROUP)
        if group is None:
            if FLAGS in f.metadata:
                out.append(_param(f.name, f, hints[f.name]))
            continue
        if f.metadata.get(FLAGS):  # the group's on-switch (e.g. --enable-batcher)
            info = typer.Option(*f.metadata[FLAGS], help=f.metadata.get("help") or None)
            out.append(
                inspect.Parameter(
                    f.name, inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[bool, info]
                )
            )
        inner = get_type_hints(group)
        out += [_param(f"{f.name}{SEP}{g.name}", g, inner[g.name]) for g in fields(group) if FLAGS in g.metadata]
    return out


def _value(f: Field[Any], raw: Any) -> Any:
    parse = f.metadata.get("parse")
    return parse(raw) if parse is not None and raw is not None else raw


def settings(values: dict[str, Any]) -> ServerSettings:
    """ServerSettings from the parsed parameters. ValueError: a value the settings refuse."""
    kwargs: dict[str, Any] = {}
    for f in fields(ServerSettings):
        group = f.metadata.get(GROUP)
        if group is None:
            if FLAGS in f.metadata:
                kwargs[f.name] = _value(f, values[f.name])
            continue
        if f.metadata.get(FLAGS) and not values[f.name]:
            continue  # switched off: the field's default (None)
        sub = {g.name: _value(g, values[f"{f.name}{SEP}{g.name}"]) for g in fields(group) if FLAGS in g.metadata}
        required = [g.name for g in fields(group) if g.default is MISSING and g.default_factory is MISSING]
        if any(sub.get(name) is None for name in required):
            continue  # e.g. the payload logger without --log-url: off
        kwargs[f.name] = group(**{k: v for k, v in sub.items() if v is not None or k not in required})
    return finish(ServerSettings(**kwargs))


def from_argv(argv: list[str]) -> ServerSettings:
    """ServerSettings from command-line arguments, with `modelplane serve`'s option names (KServe's spellings
    included); other arguments are left for the caller's own parser. ValueError: a value the settings refuse."""
    import click

    parsed: dict[str, Any] = {}

    def collect(**values: Any) -> None:
        parsed.update(values)

    collect.__signature__ = inspect.Signature(parameters())  # type: ignore[attr-defined]
    app = typer.Typer(add_completion=False)
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(collect)
    try:
        app(argv, standalone_mode=False)
    except click.ClickException as exc:
        raise ValueError(exc.format_message()) from None
    return settings(parsed)
