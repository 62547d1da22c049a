"""Server: adaptive batching — concurrent requests for one model become one call; each caller gets its own rows."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from modelplane.model.options import Batching
from modelplane.protocol.errors import ClientGone, DeadlineExceeded, InferenceError
from modelplane.server.metrics import Metrics

QUIET_SHARE = 0.1  # a pause in arrivals this long (as a share of the batch's fixed cost) ends a hold
ABANDONED_AFTER_S = 0.1  # a request queued this long starts watching for its client's disconnect
Gone = Callable[[], Awaitable[None]]  # completes when the client has gone away
Run = Callable[[Any, Mapping[str, str]], Awaitable[tuple[Any, dict[str, str]]]]


class Kind(Protocol):
    """How one payload type (V1 instances, V2 tensors) is measured, merged and split; see server.batch_kinds."""

    def rows(self, payload: Any) -> int | None: ...  # None: this payload cannot be batched

    def key(self, payload: Any) -> Hashable: ...  # only payloads with equal keys share a batch

    def combine(self, payloads: list[Any]) -> Any: ...

    def split(self, result: Any, combined: Any, payloads: list[Any], counts: list[int]) -> list[Any]: ...


class CostModel:
    """Batch time ≈ fixed + per_row * rows, fitted by exponentially weighted least squares over recent batches."""

    def __init__(self, decay: float = 0.05) -> None:
        self.decay = decay
        self.w = self.n = self.t = self.nn = self.nt = 0.0

    def record(self, rows: int, seconds: float) -> None:
        keep = 1.0 - self.decay
        self.w = keep * self.w + 1.0
        self.n = keep * self.n + rows
        self.t = keep * self.t + seconds
        self.nn = keep * self.nn + rows * rows
        self.nt = keep * self.nt + rows * seconds

    @property
    def per_row(self) -> float:
        if self.w == 0:
            return 0.0
        var = self.nn / self.w - (self.n / self.w) ** 2
        if var <= 1e-9:  # every batch had the same size: no slope to see
            return 0.0
        return max(0.0, (self.nt / self.w - self.n * self.t / self.w**2) / var)

    @property
    def fixed(self) -> float:
        if self.w == 0:
            return 0.0
        return max(0.0, self.t / self.w - self.per_row * self.n / self.w)


@dataclass(slots=True, eq=False)
class _Item:
    kind: Kind
    payload: Any
    headers: Mapping[str, str]
    rows: int
    key: Hashable
    future: asyncio.Future[tuple[Any, dict[str, str]]]
    enqueued: float = field(default_factory=time.monotonic)
    gone: Gone | None = None  # completes when the client disconnects
    watched: bool = False


class Batcher:
    """Per-model queue that merges requests into batches.

    A batch is dispatched when the model is free and either enough rows are queued (max_batch_size, or a preferred
    size), or waiting longer would not pay. The batch cost is learnt as fixed + per_row * rows. Waiting can only
    pay when more than one request arrives per fixed cost (arrival rate * fixed >= 1, measured); then the batcher
    holds while requests keep arriving — typically the burst of callers whose previous batch just returned — and
    dispatches at the first pause of a tenth of the fixed cost, and at most min(fixed cost, max_latency) after the
    model became free. So a lone request goes straight to the model, fast models are never held for long, and under
    load batches grow to what the load offers. Requests are never split; a request larger than max_batch_size runs
    alone. An error in a batch goes to that batch's callers only.
    """

    def __init__(self, name: str, config: Batching, run: Run, metrics: Metrics) -> None:
        self.name, self.config, self.run, self.metrics = name, config, run, metrics
        self.queue: deque[_Item] = deque()
        self.busy = False
        self.cost = CostModel()
        self._gap = 0.0  # EWMA of the time between arrivals
        self._last_arrival = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._free_since = 0.0  # when the last batch finished
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    @property
    def arrival_rate(self) -> float:
        return 1.0 / self._gap if self._gap > 0 else 0.0

    async def submit(
        self, kind: Kind, payload: Any, headers: Mapping[str, str], gone: Gone | None = None
    ) -> tuple[Any, dict[str, str]]:
        """Run `payload` in a batch. `gone()` completes when the client disconnects: a request still queued
        ABANDONED_AFTER_S after it arrived starts watching for that, and leaves the queue if it happens."""
        rows = kind.rows(payload)
        if rows is None or rows >= self.config.max_batch_size:
            return await self.run(payload, headers)
        now = time.monotonic()
        if self._last_arrival:
            gap = now - self._last_arrival
            self._gap = gap if self._gap == 0 else 0.8 * self._gap + 0.2 * gap
        self._last_arrival = now
        future: asyncio.Future[tuple[Any, dict[str, str]]] = asyncio.get_running_loop().create_future()
        item = _Item(kind, payload, headers, rows, kind.key(payload), future, now, gone)
        self.queue.append(item)
        self.metrics.set_batch_queue_depth(self.name, len(self.queue))
        self._poke()
        if gone is not None and self._sweeper is None and not future.done() and self.queue:
            self._sweeper = asyncio.get_running_loop().call_later(ABANDONED_AFTER_S, self._sweep)
        if self.config.timeout_s is None:
            return await future
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.config.timeout_s)
        except TimeoutError:
            future.cancel()  # dispatch skips it; a running batch's result for it is dropped
            raise DeadlineExceeded(f"Model {self.name}: batched request timed out") from None

    def _poke(self) -> None:
        if self.busy:
            return
        while self.queue and self.queue[0].future.done():  # timed out while queued
            self.queue.popleft()
        if not self.queue:
            return
        now = time.monotonic()
        head = self.queue[0]
        queued_rows = sum(i.rows for i in self.queue if i.key == head.key)
        full = queued_rows >= self.config.max_batch_size or any(queued_rows >= p for p in self.config.preferred_sizes)
        fixed = self.cost.fixed
        if full or self.arrival_rate * fixed < 1.0:
            self._dispatch()  # enough rows, or too few arrivals for waiting to merge anything
            return
        # Requests are arriving faster than one per batch overhead: wait while they keep coming (a burst of
        # callers whose last batch just returned), at most the fixed cost and max_latency past the moment the
        # model was free for this batch.
        start = max(head.enqueued, self._free_since)
        due = min(start + min(self.config.max_latency_ms / 1000, fixed), self._last_arrival + QUIET_SHARE * fixed)
        if now >= due:
            self._dispatch()
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(loop.time() + (due - now), self._on_timer)

    def _sweep(self) -> None:
        """Requests queued for ABANDONED_AFTER_S start watching for their client's disconnect (a watcher for every
        request would cost on the fast path; only waiting requests can be abandoned work)."""
        self._sweeper = None
        now = time.monotonic()
        pending = False
        for item in self.queue:
            if item.gone is None or item.watched or item.future.done():
                continue
            if now - item.enqueued < ABANDONED_AFTER_S:
                pending = True
                continue
            item.watched = True
            task = asyncio.get_running_loop().create_task(self._watch(item))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if pending:
            self._sweeper = asyncio.get_running_loop().call_later(ABANDONED_AFTER_S, self._sweep)

    async def _watch(self, item: _Item) -> None:
        assert item.gone is not None
        left = asyncio.ensure_future(item.gone())
        try:
            await asyncio.wait((left, item.future), return_when=asyncio.FIRST_COMPLETED)
        finally:
            left.cancel()
        if left.done() and not left.cancelled() and not item.future.done() and item in self.queue:
            self.queue.remove(item)  # never reaches the model
            self.metrics.set_batch_queue_depth(self.name, len(self.queue))
            self.metrics.reject(self.name, "client_gone")
            item.future.set_exception(
                ClientGone(f"Model {self.name}: the client disconnected while its request was queued")
            )

    def _on_timer(self) -> None:
        self._timer = None
        self._poke()

    def _target_rows(self, key: Hashable) -> int:
        available = sum(i.rows for i in self.queue if i.key == key and not i.future.done())
        limit = self.config.max_batch_size
        fitting = [p for p in self.config.preferred_sizes if p <= min(available, limit)]
        return max(fitting) if fitting else limit

    def _dispatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        key = self.queue[0].key
        target = self._target_rows(key)
        batch: list[_Item] = []
        rows = 0
        rest: deque[_Item] = deque()
        for item in self.queue:
            if item.future.done():
                continue
            if item.key == key and rows + item.rows <= target:
                batch.append(item)
                rows += item.rows
            else:
                rest.append(item)
        self.queue = rest
        self.metrics.set_batch_queue_depth(self.name, len(self.queue))
        self.busy = True
        task = asyncio.get_running_loop().create_task(self._run(batch, rows))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Item], rows: int) -> None:
        start = time.monotonic()
        for item in batch:
            self.metrics.observe_queue_wait(self.name, start - item.enqueued)
        self.metrics.observe_batch(self.name, rows)
        try:
            kind = batch[0].kind
            payloads = [i.payload for i in batch]
            combined = payloads[0] if len(batch) == 1 else kind.combine(payloads)
            result, out_headers = await self.run(combined, batch[0].headers)
            if len(batch) == 1:
                parts = [result]
            else:
                parts = kind.split(result, combined, payloads, [i.rows for i in batch])
                if len(parts) != len(batch):
                    raise InferenceError(f"batch split into {len(parts)} parts for {len(batch)} requests")
        except Exception as exc:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
        else:
            for item, part in zip(batch, parts, strict=True):
                if not item.future.done():
                    item.future.set_result((part, out_headers))
        finally:
            self._free_since = time.monotonic()
            self.cost.record(rows, self._free_since - start)
            self.busy = False
            self._poke()
