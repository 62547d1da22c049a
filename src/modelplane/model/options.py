"""Model API: per-model serving options — adaptive batching and overload limits (set on a Model or server-wide)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Batching:
    """Merge concurrent requests into one model call (KServe's batcher: maxBatchSize, maxLatency, timeout).

    `max_latency_ms` bounds how long a request may wait for companions; the server waits less (usually not at
    all) when its measured batch cost says waiting would not pay. `preferred_sizes` cut batches at these row counts
    when more rows are queued (as Triton's preferred_batch_size). `timeout_s` bounds a request's whole stay.
    """

    max_batch_size: int = 32
    max_latency_ms: float = 5.0
    preferred_sizes: tuple[int, ...] = ()
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.max_latency_ms < 0:
            raise ValueError("max_batch_size must be >= 1 and max_latency_ms >= 0")


@dataclass(frozen=True, slots=True)
class Limits:
    """Overload control: at most `max_concurrency` requests in the model (0 = unlimited) and `max_queue` waiting."""

    max_concurrency: int = 0
    max_queue: int = 0

    def __post_init__(self) -> None:
        if self.max_concurrency < 0 or self.max_queue < 0:
            raise ValueError("max_concurrency and max_queue must be >= 0")

    @property
    def active(self) -> bool:
        return self.max_concurrency > 0
