"""Storage: single-file http(s) downloads (per-host headers from the environment, KServe's content-type rules)."""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import httpx
from tenacity import RetryCallState, retry, retry_if_exception_type, wait_exponential

from modelplane.storage.archive import extract, is_archive
from modelplane.storage.base import (
    AccessDenied,
    InvalidURI,
    NoProgress,
    NotFound,
    Progress,
    Provider,
    Select,
    StorageError,
    Transient,
)
from modelplane.storage.redact import redact

ZIP_TYPES = {"application/zip", "application/x-zip-compressed", "application/zip-compressed"}
TAR_TYPES = {"application/x-tar", "application/x-gtar", "application/x-gzip", "application/gzip"}


def _out_of_attempts(state: RetryCallState) -> bool:
    """Read when retrying, not at import: MODELPLANE_STORAGE_ATTEMPTS (default 4)."""
    return state.attempt_number >= int(os.environ.get("MODELPLANE_STORAGE_ATTEMPTS", "4"))


def host_headers(uri: str) -> dict[str, str]:
    """Headers for this host from the env var `<hostname>-headers` (a JSON object), as KServe's secrets provide."""
    host = urlparse(uri).hostname or ""
    raw = os.environ.get(f"{host}-headers")
    if not raw:
        return {}
    try:
        headers = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidURI(f"the {host}-headers environment variable is not a JSON object") from exc
    return {str(k): str(v) for k, v in headers.items()}


def _raise_for_status(response: httpx.Response, uri: str) -> None:
    code = response.status_code
    if code < 400:
        return
    where = redact(uri)
    if code == 404:
        raise NotFound(f"{where} was not found (HTTP 404)")
    if code in (401, 403):
        raise AccessDenied(f"access to {where} was denied (HTTP {code})")
    if code == 429 or code >= 500:
        raise Transient(f"{where} answered HTTP {code}")
    raise StorageError(f"{where} answered HTTP {code}")


def _check_content_type(name: str, content_type: str, uri: str) -> None:
    ctype = content_type.split(";")[0].strip().lower()
    lower = name.lower()
    if lower.endswith(".zip"):
        ok = ctype in ZIP_TYPES
    elif lower.endswith((".tar", ".tgz", ".tar.gz")):
        ok = ctype in TAR_TYPES
    else:
        ok = ctype in ("application/octet-stream", "binary/octet-stream", "")
    if not ok:
        raise StorageError(f"{redact(uri)} has content type {ctype!r}, which does not match a {name} model file")


class HTTPProvider(Provider):
    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._lengths: dict[str, int] = {}  # uri -> the size HEAD announced (checks a GET without Content-Length)

    def _client(self, uri: str) -> httpx.Client:
        return httpx.Client(timeout=self.timeout, follow_redirects=True, headers=host_headers(uri))

    def version(self, uri: str) -> str | None:
        try:
            with self._client(uri) as client:
                response = client.head(uri)
        except httpx.HTTPError:
            return None  # the GET will report the real problem
        if response.status_code >= 400:
            return None
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and response.headers.get("content-encoding") is None:
            self._lengths[uri] = int(length)
        etag = response.headers.get("etag")
        if etag:
            return f"etag:{etag}"
        modified = response.headers.get("last-modified")
        if modified:
            return f"modified:{modified}:{response.headers.get('content-length', '')}"
        return None

    def fetch(self, uri: str, dest: Path, progress: Progress | None = None, select: Select | None = None) -> None:
        name = PurePosixPath(urlparse(uri).path).name
        if not name:
            raise InvalidURI(f"{redact(uri)} does not name a file")
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / name
        self._download(uri, target, progress or NoProgress())
        if is_archive(name):
            extract(target, dest)
            target.unlink()

    @retry(
        retry=retry_if_exception_type(Transient),
        stop=_out_of_attempts,
        wait=wait_exponential(multiplier=0.2, max=3),
        reraise=True,
    )
    def _download(self, uri: str, target: Path, progress: Progress) -> None:
        try:
            with self._client(uri) as client, client.stream("GET", uri) as response:
                _raise_for_status(response, uri)
                _check_content_type(target.name, response.headers.get("content-type", ""), uri)
                encoded = response.headers.get("content-encoding") is not None
                declared = response.headers.get("content-length")
                expected = int(declared) if declared is not None and declared.isdigit() else None
                progress.start(None if encoded else expected)
                with target.open("wb") as fh:
                    # a content-encoded body is decoded here; Content-Length counts the bytes on the wire
                    for chunk in response.iter_bytes(1 << 20) if encoded else response.iter_raw(1 << 20):
                        fh.write(chunk)
                        progress.advance(len(chunk))
                _verify_size(
                    uri,
                    response.num_bytes_downloaded,
                    expected,
                    target.stat().st_size,
                    None if encoded else self._lengths.get(uri),
                )
        except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
            target.unlink(missing_ok=True)
            raise Transient(f"downloading {redact(uri)} failed: {type(exc).__name__}") from exc
        except StorageError:
            target.unlink(missing_ok=True)
            raise


def _verify_size(uri: str, wire: int, declared: int | None, on_disk: int, announced: int | None) -> None:
    """A download counts only when its size is proven: Content-Length against the bytes received, else the size
    HEAD announced against the file (a body cut short with no Content-Length is not a model)."""
    if declared is not None and wire != declared:
        raise Transient(f"{redact(uri)}: got {wire} of {declared} bytes")
    if declared is None and announced is not None and on_disk != announced:
        raise Transient(f"{redact(uri)}: got {on_disk} bytes, HEAD announced {announced}")
