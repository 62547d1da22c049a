"""Model API: declaring a setting once — a dataclass field that is also a `modelplane serve` option. The CLI
generates its options from these fields and the platform writes replica command lines from them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, field
from typing import Any

FLAGS = "modelplane.flags"  # field metadata: the option's names (the first is the one command lines use)
GROUP = "modelplane.group"  # field metadata: the dataclass whose flagged fields are this group's options


def option(
    default: Any = MISSING,
    *flags: str,
    help: str = "",
    hidden: bool = False,
    parse: Callable[[str], Any] | None = None,
    show: Callable[[Any], str] | None = None,
) -> Any:
    """A field that is also an option. `flags`: its names ("--a/--b" for an on/off pair); `parse` / `show`: how a
    value reads from and writes to one argument when it is not a plain int, float or str."""
    meta = {FLAGS: flags, "help": help, "hidden": hidden, "parse": parse, "show": show}
    return field(default=default, metadata=meta)


def group(kind: type, *switch: str, help: str = "", optional: bool = False) -> Any:
    """A field holding a dataclass of options: always there, or (`optional`) None unless its `switch` flag is given
    or its required fields are."""
    meta = {GROUP: kind, FLAGS: switch, "help": help}
    return field(default=None, metadata=meta) if optional else field(default_factory=kind, metadata=meta)


def comma_ints(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(",") if p.strip())


def comma_names(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def comma_join(values: tuple[Any, ...]) -> str:
    return ",".join(str(v) for v in values)


UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def byte_quantity(text: str) -> int:
    """A number of bytes as Kubernetes writes memory: `1073741824`, `512Mi`, `2G`."""
    value = text.strip()
    number = value.rstrip("KMGTi")
    unit = value[len(number) :]
    if unit not in UNITS or not number.isdigit():
        raise ValueError(f"expected bytes such as 1073741824, 512Mi or 2G, got {text!r}")
    return int(number) * UNITS[unit]


def truthy(text: str) -> bool:
    """KServe-style boolean values (--enable_grpc false)."""
    value = text.strip().lower()
    if value in ("true", "1", "yes", "y", "on", "t"):
        return True
    if value in ("false", "0", "no", "n", "off", "f"):
        return False
    raise ValueError(f"expected a boolean, got {text!r}")


def lower(value: Any) -> str:
    return str(value).lower()
