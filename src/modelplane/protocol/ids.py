"""Protocol core: fast request ids (random UUID4 strings without uuid.uuid4's syscall per id)."""

from __future__ import annotations

import random

_rng = random.SystemRandom().getrandbits(64)
_random = random.Random(_rng)


def new_id() -> str:
    """A version-4 UUID string from a per-process PRNG seeded by the OS."""
    h = f"{_random.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
