"""Protocol core: fast request ids — UUID4-shaped strings made of a random per-process prefix and a counter (no
syscall and no 128-bit draw per id), unique across processes and forks: the prefix is drawn from the OS on first use
in each process and again in every child a fork makes (a zygote's replicas and pre-forked workers would otherwise
repeat their parent's ids). Ids are labels for correlating logs and events, not secrets."""

from __future__ import annotations

import itertools
import os

_prefix: str | None = None
_counter = itertools.count()


def _reseed() -> str:
    global _prefix, _counter
    h = os.urandom(10).hex()  # 80 random bits, 74 of them kept: the version and variant fix the rest
    _prefix = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-"
    _counter = itertools.count()
    return _prefix


def _forget() -> None:
    global _prefix
    _prefix = None  # the child draws its own prefix on its first id


os.register_at_fork(after_in_child=_forget)


def new_id() -> str:
    """A version-4 UUID string: this process's random prefix and the next value of its 48-bit counter."""
    prefix = _prefix or _reseed()
    return f"{prefix}{next(_counter) & 0xFFFFFFFFFFFF:012x}"
