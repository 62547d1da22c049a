"""CLI: a rich progress bar that storage providers report into (stderr; thread-safe for parallel parts)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn


class RichProgress:
    def __init__(self, label: str) -> None:
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = self._bar.add_task(label, total=None)

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._bar.stop()

    def start(self, total: int | None) -> None:
        self._bar.reset(self._task, total=total)  # a retried download starts over

    def advance(self, n: int) -> None:
        self._bar.advance(self._task, n)
