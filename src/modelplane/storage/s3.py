"""Storage: s3:// with boto3 (AWS and any S3-compatible store: MinIO, moto...), KServe's environment variables.

AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_ENDPOINT_URL / AWS_DEFAULT_REGION are read by boto3;
S3_VERIFY_SSL (0/false disables), S3_USER_VIRTUAL_BUCKET (virtual-hosted style), awsAnonymousCredential (unsigned),
S3_MAX_FILE_CONCURRENCY (parallel objects, default 4). Large objects download in parallel ranged parts (boto3's
transfer manager).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from modelplane.storage.base import AccessDenied, InvalidURI, NotFound, StorageError, Transient
from modelplane.storage.buckets import BucketProvider, RemoteObject

NOT_FOUND = {"404", "NoSuchBucket", "NoSuchKey", "NotFound"}
DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
PART = 8 * 2**20
MAX_PART = 64 * 2**20


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


class S3Provider(BucketProvider):
    name = "s3"

    def __init__(self) -> None:
        super().__init__()
        self._client: Any = None

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
                max_pool_connections=32,
            )
            # a session of our own: boto3's default session caches the credentials it first saw
            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
                config=config,
                verify=_flag("S3_VERIFY_SSL", True),
            )
        return self._client

    def parse(self, uri: str) -> tuple[str, str]:
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise InvalidURI(f"expected s3://<bucket>/<prefix>, got {uri}")
        return parsed.netloc, parsed.path.lstrip("/")

    def translate(self, exc: Exception, what: str) -> StorageError:
        return _translate(exc, what)

    def head(self, bucket: str, key: str) -> RemoteObject | None:
        try:
            head = self.client().head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if isinstance(_translate(exc, key), NotFound):
                return None
            raise
        return RemoteObject(key, int(head["ContentLength"]), head["ETag"], exact=True)

    def list_prefix(self, bucket: str, prefix: str) -> Iterator[RemoteObject]:
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                yield RemoteObject(o["Key"], int(o["Size"]), o["ETag"])

    def get(self, bucket: str, obj: RemoteObject, target: Path, advance: Callable[[int], None]) -> None:
        from boto3.s3.transfer import TransferConfig

        # ~16 ranged parts per object, 8-64 MiB each: fewer, larger requests measured faster than boto3's fixed 8 MiB
        part = min(MAX_PART, max(PART, obj.size // 16))
        transfer = TransferConfig(multipart_threshold=PART, multipart_chunksize=part, max_concurrency=8)
        self.client().download_file(bucket, obj.key, str(target), Config=transfer, Callback=advance)
