"""Storage: the provider contract every scheme implements, and the errors providers translate vendor errors into."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Protocol


class Progress(Protocol):
    """Where providers report download progress (the CLI draws a bar; the default ignores it)."""

    def start(self, total: int | None) -> None: ...

    def advance(self, n: int) -> None: ...


Select = Callable[[str], bool]
"""Which relative paths a caller wants (allow/ignore patterns); providers that list before fetching skip the rest."""


class NoProgress:
    def start(self, total: int | None) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


class StorageError(Exception):
    """Base of storage errors; the vendor's original exception is chained as __cause__."""


class NotFound(StorageError):
    pass


class AccessDenied(StorageError):
    pass


class Transient(StorageError):
    """Worth retrying: connection reset, timeout, 5xx, throttling."""


class InvalidURI(StorageError):
    pass


class MissingExtra(StorageError):
    """The URI's storage SDK is not installed; the message names the extra to install."""


class UnsafeArchive(StorageError):
    """An archive entry would land outside the target directory, or is a device/link we refuse."""


class Provider(ABC):
    """Fetches the object(s) a URI names into a directory.

    `version(uri)` returns a string that changes whenever the content does (ETag, generation, content hash...) or
    None when the provider cannot tell cheaply; the cache keys entries by URI + version. `fetch` writes into
    `dest` (an empty directory), may skip paths `select` rejects, and
    raises one of the errors above, never a vendor exception.
    """

    @abstractmethod
    def version(self, uri: str) -> str | None: ...

    @abstractmethod
    def fetch(self, uri: str, dest: Path, progress: Progress | None = None, select: Select | None = None) -> None: ...

    def is_local(self, uri: str) -> bool:
        """True when the URI already names a local directory that can be served in place (no copy, no cache)."""
        return False

    def local_path(self, uri: str) -> Path:
        raise InvalidURI(f"{uri} is not a local path")
