"""Server: the model cache's memory helpers — a model's size on disk, and handing freed heap back to the system."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
from pathlib import Path


def disk_bytes(path: Path) -> int:
    """Bytes of a model's files: the file, or every regular file under the directory (links not followed)."""
    try:
        if not path.is_dir():
            return path.stat().st_size
        total, pending = 0, [str(path)]
        while pending:
            with os.scandir(pending.pop()) as entries:
                for e in entries:
                    if e.is_dir(follow_symlinks=False):
                        pending.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
        return total
    except OSError:
        return 0


class Trimmer:
    """Hands freed heap memory back to the system after evictions (glibc's malloc_trim, on a worker thread), a second
    after an eviction and at most once a second: without it the heap keeps what 1,000 unloaded models held."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name) if name else None
        self._trim = getattr(libc, "malloc_trim", None)
        self._pending: asyncio.TimerHandle | None = None

    def soon(self) -> None:
        if self._trim is None or self._pending is not None:
            return
        self._pending = asyncio.get_running_loop().call_later(1.0, self._run)

    def _run(self) -> None:
        self._pending = None
        asyncio.get_running_loop().run_in_executor(None, self._trim, 0)
