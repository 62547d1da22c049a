"""Storage: Azure Blob (https://<account>.blob.core.windows.net/<container>/<prefix>) with azure-storage-blob.

Credentials, first match wins: AZURE_STORAGE_CONNECTION_STRING; AZURE_STORAGE_ACCESS_KEY (shared key); a service
principal (AZURE_CLIENT_ID + AZURE_TENANT_ID + AZURE_CLIENT_SECRET, via azure-identity); otherwise anonymous.
AZURE_STORAGE_BLOB_ENDPOINT replaces the account's default endpoint (Azurite, private endpoints).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from modelplane.storage.base import AccessDenied, InvalidURI, NotFound, StorageError, Transient
from modelplane.storage.buckets import BucketProvider, RemoteObject

HOST_SUFFIX = ".blob.core.windows.net"


def _translate(exc: Exception, what: str) -> StorageError:
    from azure.core import exceptions as az

    if isinstance(exc, az.ResourceNotFoundError):
        return NotFound(f"{what} was not found ({getattr(exc, 'error_code', None) or 404})")
    if isinstance(exc, az.ClientAuthenticationError):
        return AccessDenied(f"access to {what} was denied ({getattr(exc, 'error_code', None) or 'authentication'})")
    if isinstance(exc, az.HttpResponseError) and exc.status_code in (401, 403):
        return AccessDenied(f"access to {what} was denied (HTTP {exc.status_code})")
    if isinstance(exc, az.HttpResponseError) and exc.status_code == 404:
        return NotFound(f"{what} was not found")
    return Transient(f"{what}: {type(exc).__name__}")


def _credential() -> Any:
    key = os.environ.get("AZURE_STORAGE_ACCESS_KEY")
    if key:
        return key
    sp = [os.environ.get(v) for v in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")]
    if all(sp):
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(*sp)
    return None  # anonymous: public containers


class AzureProvider(BucketProvider):
    name = "azure"

    def __init__(self) -> None:
        super().__init__()
        self._services: dict[str, Any] = {}

    def service(self, account: str) -> Any:
        if account not in self._services:
            from azure.storage.blob import BlobServiceClient

            conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
            if conn:
                self._services[account] = BlobServiceClient.from_connection_string(conn)
            else:
                url = os.environ.get("AZURE_STORAGE_BLOB_ENDPOINT") or f"https://{account}{HOST_SUFFIX}"
                cred = _credential()
                if isinstance(cred, str):
                    cred = {"account_name": account, "account_key": cred}
                self._services[account] = BlobServiceClient(url, credential=cred)
        return self._services[account]

    def container(self, bucket: str) -> Any:
        account, _, container = bucket.partition("/")
        return self.service(account).get_container_client(container)

    def parse(self, uri: str) -> tuple[str, str]:
        parsed = urlparse(uri)
        host = parsed.hostname or ""
        container, _, prefix = parsed.path.lstrip("/").partition("/")
        if not host.endswith(HOST_SUFFIX) or not container:
            raise InvalidURI(f"expected https://<account>{HOST_SUFFIX}/<container>/<prefix>, got {uri}")
        return f"{host[: -len(HOST_SUFFIX)]}/{container}", prefix

    def translate(self, exc: Exception, what: str) -> StorageError:
        return _translate(exc, what)

    def head(self, bucket: str, key: str) -> RemoteObject | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            props = self.container(bucket).get_blob_client(key).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return RemoteObject(key, int(props.size), str(props.etag), exact=True)

    def list_prefix(self, bucket: str, prefix: str) -> Iterator[RemoteObject]:
        for blob in self.container(bucket).list_blobs(name_starts_with=prefix or None):
            yield RemoteObject(blob.name, int(blob.size), str(blob.etag))

    def get(self, bucket: str, obj: RemoteObject, target: Path, advance: Callable[[int], None]) -> None:
        done = 0

        def hook(current: int, _total: int | None) -> None:
            nonlocal done
            advance(current - done)
            done = current

        workers = int(os.environ.get("AZURE_MAX_PART_CONCURRENCY", "8"))
        stream = self.container(bucket).download_blob(obj.key, max_concurrency=workers, progress_hook=hook)
        with target.open("wb") as f:
            stream.readinto(f)
