"""Protocol core: fast request ids (random UUID4 strings without uuid.uuid4's syscall per id), unique across
processes and forks: the generator is seeded from the OS on first use in each process and again in every child a
fork makes (a zygote's replicas and pre-forked workers would otherwise repeat their parent's sequence)."""

from __future__ import annotations

import os
import random

_random: random.Random | None = None


def _reseed() -> random.Random:
    global _random
    _random = random.Random(int.from_bytes(os.urandom(32), "little"))
    return _random


def _forget() -> None:
    global _random
    _random = None  # the child seeds its own generator on its first id


os.register_at_fork(after_in_child=_forget)


def new_id() -> str:
    """A version-4 UUID string from a per-process PRNG seeded by the OS."""
    h = f"{(_random or _reseed()).getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
