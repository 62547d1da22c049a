"""Storage: s3:// with boto3 (AWS and any S3-compatible store: MinIO, moto...), KServe's environment variables.

AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_ENDPOINT_URL / AWS_DEFAULT_REGION are read by boto3;
S3_VERIFY_SSL (0/false disables), S3_USER_VIRTUAL_BUCKET (virtual-hosted style), awsAnonymousCredential (unsigned),
S3_MAX_FILE_CONCURRENCY (parallel objects, default 4). Large objects download in parallel ranged parts (boto3's
transfer manager). An exact object match downloads just that object; otherwise every object under the prefix.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from modelplane.storage.base import (
    AccessDenied,
    InvalidURI,
    NoProgress,
    NotFound,
    Progress,
    Provider,
    StorageError,
    Transient,
)

NOT_FOUND = {"404", "NoSuchBucket", "NoSuchKey", "NotFound"}
DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.lower() not in ("0", "false", "no", "off")


def _translate(exc: Exception, what: str) -> StorageError:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in NOT_FOUND:
            return NotFound(f"{what} was not found ({code})")
        if code in DENIED:
            return AccessDenied(f"access to {what} was denied ({code})")
        return Transient(f"{what}: {code or 'S3 error'}")
    if isinstance(exc, NoCredentialsError):
        return AccessDenied(f"no credentials to read {what}")
    if isinstance(exc, EndpointConnectionError):
        return Transient(f"cannot reach the S3 endpoint for {what}")
    return Transient(f"{what}: {type(exc).__name__}")


class S3Provider(Provider):
    def __init__(self) -> None:
        self._client: Any = None
        self._listings: dict[str, list[dict[str, Any]]] = {}  # per download() call: version() then fetch()

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore import UNSIGNED
            from botocore.config import Config

            config = Config(
                s3={"addressing_style": "virtual" if _flag("S3_USER_VIRTUAL_BUCKET", False) else "path"},
                retries={"max_attempts": int(os.environ.get("S3_MAX_ATTEMPTS", "3")), "mode": "standard"},
                connect_timeout=float(os.environ.get("S3_CONNECT_TIMEOUT", "15")),
                read_timeout=float(os.environ.get("S3_READ_TIMEOUT", "30")),
                signature_version=UNSIGNED if _flag("awsAnonymousCredential", False) else None,
            )
            self._client = boto3.client(
                "s3",
                endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
                config=config,
                verify=_flag("S3_VERIFY_SSL", True),
            )
        return self._client

    @staticmethod
    def parse(uri: str) -> tuple[str, str]:
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise InvalidURI(f"expected s3://<bucket>/<prefix>, got {uri}")
        return parsed.netloc, parsed.path.lstrip("/")

    def _objects(self, uri: str) -> list[dict[str, Any]]:
        if uri not in self._listings:
            self._listings[uri] = self._list(uri)
        return self._listings[uri]

    def _list(self, uri: str) -> list[dict[str, Any]]:
        """The exact object if `uri` names one, else every object under the prefix."""
        bucket, prefix = self.parse(uri)
        client = self.client()
        try:
            if prefix and not prefix.endswith("/"):
                try:
                    head = client.head_object(Bucket=bucket, Key=prefix)
                    return [{"Key": prefix, "ETag": head["ETag"], "Size": head["ContentLength"], "exact": True}]
                except Exception as exc:  # not an exact object: fall through to a prefix listing
                    err = _translate(exc, uri)
                    if not isinstance(err, NotFound):
                        raise err from exc
            objects: list[dict[str, Any]] = []
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
                objects.extend(o for o in page.get("Contents", []) if not o["Key"].endswith("/"))
        except StorageError:
            raise
        except Exception as exc:
            raise _translate(exc, uri) from exc
        if not objects:
            raise NotFound(f"no objects under {uri}")
        return objects

    def version(self, uri: str) -> str | None:
        listing = sorted((o["Key"], o["ETag"], o["Size"]) for o in self._objects(uri))
        return "s3:" + hashlib.sha256(repr(listing).encode()).hexdigest()

    def fetch(self, uri: str, dest: Path, progress: Progress | None = None) -> None:
        from boto3.s3.transfer import TransferConfig

        bucket, prefix = self.parse(uri)
        objects = self._objects(uri)
        transfer = TransferConfig(multipart_threshold=8 * 2**20, multipart_chunksize=8 * 2**20, max_concurrency=8)
        jobs = []
        for obj in objects:
            key = obj["Key"]
            rel = Path(key).name if obj.get("exact") else key[len(prefix) :].lstrip("/")
            target = (dest / rel).resolve()
            if dest.resolve() not in target.parents:
                raise InvalidURI(f"object key {key!r} would be written outside the model directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            jobs.append((key, target))

        def one(job: tuple[str, Path]) -> None:
            key, target = job
            try:
                self.client().download_file(bucket, key, str(target), Config=transfer, Callback=sink.advance)
            except Exception as exc:
                raise _translate(exc, f"s3://{bucket}/{key}") from exc

        sink = progress or NoProgress()
        sink.start(sum(int(o["Size"]) for o in objects))
        workers = max(1, int(os.environ.get("S3_MAX_FILE_CONCURRENCY", "4")))
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, jobs))
        if len(jobs) == 1:
            from modelplane.storage.archive import extract, is_archive

            only = jobs[0][1]
            if is_archive(only.name):
                extract(only, dest)
                only.unlink()
