"""Model API: per-model serving options — adaptive batching and overload limits (set on a Model or server-wide)."""

from __future__ import annotations

from dataclasses import dataclass

from modelplane.model.fields import comma_ints, comma_join, option

DEFAULT_CONCURRENCY = 256  # requests in one model at once (per worker) before new ones wait
DEFAULT_QUEUE = 1024  # requests waiting for a model before new ones get 429


@dataclass(frozen=True, slots=True)
class Batching:
    """Merge concurrent requests into one model call (KServe's batcher: maxBatchSize, maxLatency, timeout).

    `max_latency_ms` bounds how long a request may wait for companions; the server waits less (usually not at
    all) when its measured batch cost says waiting would not pay. `preferred_sizes` cut batches at these row counts
    when more rows are queued (as Triton's preferred_batch_size). `timeout_s` bounds a request's whole stay.
    """

    max_batch_size: int = option(32, "--max-batch-size", "--max_batch_size", "--max-batchsize", help="Rows per batch")
    max_latency_ms: float = option(5.0, "--max-latency", "--max_latency", help="Most a request waits for a batch, ms")
    preferred_sizes: tuple[int, ...] = option(
        (), "--batch-preferred-sizes", help="Comma list of preferred batch sizes", parse=comma_ints, show=comma_join
    )
    timeout_s: float | None = option(None, "--batch-timeout", help="Seconds a batched request may take")

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.max_latency_ms < 0:
            raise ValueError("max_batch_size must be >= 1 and max_latency_ms >= 0")


@dataclass(frozen=True, slots=True)
class Limits:
    """Overload control: at most `max_concurrency` requests in the model (0 = unlimited) and `max_queue` waiting.

    The defaults bound the work a model can be handed (256 at once, 1,024 waiting) so that an overloaded server
    answers 429 early instead of queueing without bound; they sit far above what adaptive batching (32 rows by
    default) or the worker threads use, so they change nothing below overload."""

    max_concurrency: int = option(
        DEFAULT_CONCURRENCY, "--max-concurrency", help="Requests in a model at once per worker (0: unlimited)"
    )
    max_queue: int = option(DEFAULT_QUEUE, "--max-queue", help="Requests waiting beyond --max-concurrency before 429")

    def __post_init__(self) -> None:
        if self.max_concurrency < 0 or self.max_queue < 0:
            raise ValueError("max_concurrency and max_queue must be >= 0")

    @property
    def active(self) -> bool:
        return self.max_concurrency > 0
