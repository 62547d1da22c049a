"""Storage: what S3, GCS and Azure Blob share — exact object or prefix, a versioned listing, parallel fetch."""

from __future__ import annotations

import hashlib
import os
from abc import abstractmethod
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from modelplane.storage.base import (
    InvalidURI,
    NoProgress,
    NotFound,
    Progress,
    Provider,
    Select,
    StorageError,
    Transient,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RemoteObject:
    key: str
    size: int
    tag: str  # ETag / generation: changes whenever the content does
    exact: bool = False  # the URI named this object itself, not a prefix above it


class BucketProvider(Provider):
    """A store of (bucket, key) objects. Subclasses talk to one SDK; this class owns the semantics.

    A URI whose path names an object downloads that object alone; otherwise every object under the prefix, keeping
    the layout below it. A lone archive is unpacked. The version is a hash of the (key, tag, size) listing, so the
    cache notices any object added, removed or rewritten.
    """

    name = "bucket"  # used in messages: "s3", "gs", "azure"

    def __init__(self) -> None:
        self._listings: dict[str, list[RemoteObject]] = {}  # per download(): version() then fetch() list once

    @abstractmethod
    def parse(self, uri: str) -> tuple[str, str]:
        """(bucket or container, key prefix) of the URI; InvalidURI when it has no bucket."""

    @abstractmethod
    def head(self, bucket: str, key: str) -> RemoteObject | None:
        """The object stored at exactly `key`, or None when there is none."""

    @abstractmethod
    def list_prefix(self, bucket: str, prefix: str) -> Iterable[RemoteObject]: ...

    @abstractmethod
    def get(self, bucket: str, obj: RemoteObject, target: Path, advance: Callable[[int], None]) -> None:
        """Write the object to `target`, reporting bytes as they arrive (large objects in parallel ranged parts)."""

    @abstractmethod
    def translate(self, exc: Exception, what: str) -> StorageError:
        """The vendor exception as one of ours (the caller chains the original)."""

    def call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except StorageError:
            raise
        except Exception as exc:
            raise self.translate(exc, what) from exc

    def objects(self, uri: str) -> list[RemoteObject]:
        if uri not in self._listings:
            self._listings[uri] = self._resolve(uri)
        return self._listings[uri]

    def _resolve(self, uri: str) -> list[RemoteObject]:
        bucket, prefix = self.parse(uri)
        if prefix and not prefix.endswith("/"):
            exact = self.call(uri, self.head, bucket, prefix)
            if exact is not None:
                return [exact]
        objects = [o for o in self.call(uri, lambda: list(self.list_prefix(bucket, prefix))) if not o.key.endswith("/")]
        if not objects:
            raise NotFound(f"no objects under {uri}")
        return objects

    def version(self, uri: str) -> str | None:
        listing = sorted((o.key, o.tag, o.size) for o in self.objects(uri))
        return f"{self.name}:" + hashlib.sha256(repr(listing).encode()).hexdigest()

    def fetch(self, uri: str, dest: Path, progress: Progress | None = None, select: Select | None = None) -> None:
        bucket, prefix = self.parse(uri)
        objects = self.objects(uri)
        root = dest.resolve()
        jobs: list[tuple[RemoteObject, Path]] = []
        for obj in objects:
            rel = Path(obj.key).name if obj.exact else obj.key[len(prefix) :].lstrip("/")
            if select is not None and not obj.exact and not select(rel):
                continue
            target = (root / rel).resolve()
            if root not in target.parents:
                raise InvalidURI(f"object key {obj.key!r} would be written outside the model directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            jobs.append((obj, target))
        sink = progress or NoProgress()
        sink.start(sum(o.size for o, _ in jobs))
        if not jobs:
            return

        def one(job: tuple[RemoteObject, Path]) -> None:
            obj, target = job
            where = f"{self.name}://{bucket}/{obj.key}"
            self.call(where, self.get, bucket, obj, target, sink.advance)
            got = target.stat().st_size
            if got != obj.size:  # never marked complete unless every object has the size the store listed
                target.unlink(missing_ok=True)
                raise Transient(f"{where}: got {got} of {obj.size} bytes")

        workers = max(
            1, int(os.environ.get("STORAGE_MAX_FILE_CONCURRENCY", os.environ.get("S3_MAX_FILE_CONCURRENCY", "4")))
        )
        with ThreadPoolExecutor(min(workers, len(jobs))) as pool:
            list(pool.map(one, jobs))
        if len(jobs) == 1:
            from modelplane.storage.archive import extract, is_archive

            only = jobs[0][1]
            if is_archive(only.name):
                extract(only, dest)
                only.unlink()
