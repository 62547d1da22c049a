"""Storage: gs:// with google-cloud-storage (STORAGE_EMULATOR_HOST honoured; anonymous when no credentials exist)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from modelplane.storage.base import AccessDenied, InvalidURI, NotFound, StorageError, Transient
from modelplane.storage.buckets import BucketProvider, RemoteObject

CHUNK = 32 * 2**20
PARALLEL_ABOVE = 2 * CHUNK


def _translate(exc: Exception, what: str) -> StorageError:
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    if isinstance(exc, api.NotFound):
        return NotFound(f"{what} was not found")
    if isinstance(exc, api.Forbidden | api.Unauthorized | auth.DefaultCredentialsError | auth.RefreshError):
        return AccessDenied(f"access to {what} was denied ({type(exc).__name__})")
    return Transient(f"{what}: {type(exc).__name__}")


def _tag(blob: Any) -> str:
    return f"{blob.generation}:{blob.md5_hash or blob.etag}"


class GCSProvider(BucketProvider):
    name = "gs"

    def __init__(self) -> None:
        super().__init__()
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            from google.auth.exceptions import DefaultCredentialsError
            from google.cloud import storage

            try:
                self._client = storage.Client()
            except (DefaultCredentialsError, OSError):  # no credentials on this machine: public buckets only
                self._client = storage.Client.create_anonymous_client()
        return self._client

    def parse(self, uri: str) -> tuple[str, str]:
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise InvalidURI(f"expected gs://<bucket>/<prefix>, got {uri}")
        return parsed.netloc, parsed.path.lstrip("/")

    def translate(self, exc: Exception, what: str) -> StorageError:
        return _translate(exc, what)

    def head(self, bucket: str, key: str) -> RemoteObject | None:
        blob = self.client().bucket(bucket).get_blob(key)  # None when absent
        return None if blob is None else RemoteObject(key, int(blob.size or 0), _tag(blob), exact=True)

    def list_prefix(self, bucket: str, prefix: str) -> Iterator[RemoteObject]:
        for blob in self.client().list_blobs(bucket, prefix=prefix):
            yield RemoteObject(blob.name, int(blob.size or 0), _tag(blob))

    def get(self, bucket: str, obj: RemoteObject, target: Path, advance: Callable[[int], None]) -> None:
        blob = self.client().bucket(bucket).blob(obj.key)
        if obj.size > PARALLEL_ABOVE:
            from google.cloud.storage import transfer_manager

            workers = int(os.environ.get("GCS_MAX_PART_CONCURRENCY", "8"))
            transfer_manager.download_chunks_concurrently(
                blob, str(target), chunk_size=CHUNK, max_workers=workers, worker_type=transfer_manager.THREAD
            )
        else:
            blob.download_to_filename(str(target))
        advance(obj.size)
