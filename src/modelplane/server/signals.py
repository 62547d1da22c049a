"""Server: SIGTERM and SIGINT as an asyncio event — how a model server and the local platform learn to stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stop_event() -> Iterator[asyncio.Event]:
    """An event that SIGTERM or SIGINT sets while the block runs; the handlers are removed after it. Off the main
    thread (a server embedded in a test) none can be installed: the caller is then stopped by cancellation."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for sig in STOP_SIGNALS:
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (ValueError, RuntimeError, NotImplementedError):
            pass
    try:
        yield stop
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
