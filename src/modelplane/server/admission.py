"""Server: per-model overload control — a concurrency limit, a bounded FIFO queue, and early deadline rejection."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable

from modelplane.model.options import Limits
from modelplane.protocol.errors import ClientGone, DeadlineExceeded, Overloaded
from modelplane.server.metrics import Metrics


class Admission:
    """Admits requests to one model. Beyond `max_concurrency` running and `max_queue` waiting, a request is refused
    at once with Overloaded (429 / RESOURCE_EXHAUSTED, Retry-After from the measured service time) — a rejection
    costs no model time and no memory beyond the refusal. A request with a deadline is refused with
    DeadlineExceeded when its expected queue wait plus service time would overrun it, and dropped from the queue
    when the deadline passes while it waits: the model never works on an answer nobody will read.
    """

    def __init__(self, name: str, limits: Limits, metrics: Metrics) -> None:
        self.name = name
        self.metrics = metrics
        self.limits = limits
        self.running = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.service_s = 0.0  # EWMA of the time a request holds its slot
        self.rejected = 0

    @property
    def queued(self) -> int:
        return len(self.waiters)

    def expected_wait(self, position: int) -> float:
        slots = self.limits.max_concurrency or max(1, self.running)
        return position / slots * self.service_s

    def precheck(self) -> None:
        """Refuse now, before the request body is even read, when acquire() would refuse for a full queue."""
        limit = self.limits.max_concurrency
        if limit and self.running >= limit and len(self.waiters) >= self.limits.max_queue:
            self._reject("overloaded")
            raise Overloaded(
                f"Model {self.name} is overloaded: {self.running} running, {len(self.waiters)} queued",
                self.expected_wait(len(self.waiters) + 1),
            )

    def try_acquire(self) -> float | None:
        """A slot now, without waiting (the granted time, as acquire() returns), or None when one would wait."""
        limit = self.limits.max_concurrency
        if not limit or (self.running < limit and not self.waiters):
            self.running += 1
            return time.monotonic()
        return None

    async def acquire(self, deadline: float | None = None, gone: Callable[[], Awaitable[None]] | None = None) -> float:
        """Wait for a slot; returns the monotonic time the slot was granted (pass it to `release`). `gone()` (called
        only if the request has to wait) completes when the client disconnects: the request leaves the queue then
        (ClientGone) and the model never works on an answer nobody will read."""
        limit = self.limits.max_concurrency
        if deadline is not None:
            now = time.monotonic()
            ahead = len(self.waiters) + (1 if limit and self.running >= limit else 0)
            if now + self.expected_wait(ahead) + self.service_s > deadline:
                self._reject("deadline")
                raise DeadlineExceeded(
                    f"Model {self.name} cannot answer within the request deadline "
                    f"({max(0.0, deadline - now) * 1000:.0f} ms left, ~{self.service_s * 1000:.1f} ms per request, "
                    f"{len(self.waiters)} queued)"
                )
        granted = self.try_acquire()
        if granted is not None:
            return granted
        if len(self.waiters) >= self.limits.max_queue:
            self._reject("overloaded")
            raise Overloaded(
                f"Model {self.name} is overloaded: {self.running} running, {len(self.waiters)} queued",
                self.expected_wait(len(self.waiters) + 1),
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        queued_at = time.monotonic()
        self.metrics.set_queue_depth(self.name, len(self.waiters))
        watcher = asyncio.ensure_future(gone()) if gone is not None else None
        try:
            if deadline is None:
                await _first(waiter, watcher)
            else:
                async with asyncio.timeout_at(_loop_time(deadline)):
                    await _first(waiter, watcher)
            if not waiter.done():  # the client left first
                raise ClientGone(f"Model {self.name}: the client disconnected while its request was queued")
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._release_slot()  # granted and cancelled in the same instant: pass the slot on
            else:
                with contextlib.suppress(ValueError):  # release() may already have dropped it
                    self.waiters.remove(waiter)
                self.metrics.set_queue_depth(self.name, len(self.waiters))
            if isinstance(exc, TimeoutError):
                self._reject("deadline")
                raise DeadlineExceeded(f"Model {self.name}: the request deadline passed while queued") from None
            if isinstance(exc, ClientGone):
                self._reject("client_gone")
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
        granted = time.monotonic()  # the slot was handed over by release(): running already counts it
        self.metrics.observe_queue_wait(self.name, granted - queued_at)
        self.metrics.set_queue_depth(self.name, len(self.waiters))
        return granted

    def _reject(self, reason: str) -> None:
        self.rejected += 1
        self.metrics.reject(self.name, reason)

    def release(self, granted_at: float) -> None:
        elapsed = time.monotonic() - granted_at
        self.service_s = elapsed if self.service_s == 0.0 else 0.9 * self.service_s + 0.1 * elapsed
        self._release_slot()

    def _release_slot(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # hand the slot over: `running` stays the same
                return
        self.running -= 1


async def _first(waiter: asyncio.Future[None], watcher: asyncio.Future[None] | None) -> None:
    """Until the slot is granted or, with a watcher, the client is gone."""
    if watcher is None:
        await waiter
    else:
        await asyncio.wait((waiter, watcher), return_when=asyncio.FIRST_COMPLETED)


def _loop_time(deadline: float) -> float:
    """A time.monotonic() deadline on the running loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + (deadline - time.monotonic())
