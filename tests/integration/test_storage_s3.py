"""s3:// against a real S3-compatible server (moto's standalone server) on loopback."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from conftest import IRIS_V1
from moto.server import ThreadedMotoServer
from support import server as srv

from modelplane.storage import AccessDenied, NotFound, Transient, download
from modelplane.storage.cache import Cache
from modelplane.storage.s3 import _translate


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch, iris_dir):
    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    bucket = f"models-{id(monkeypatch) % 10**8}"
    client.create_bucket(Bucket=bucket)
    model = (iris_dir / "model.joblib").read_bytes()
    client.put_object(Bucket=bucket, Key="sklearn/iris/model.joblib", Body=model)
    client.put_object(Bucket=bucket, Key="sklearn/iris/extra/notes.txt", Body=b"n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("model.joblib")
        info.size = len(model)
        tf.addfile(info, io.BytesIO(model))
    client.put_object(Bucket=bucket, Key="archives/iris.tar.gz", Body=buf.getvalue())
    return client, bucket, env


def test_prefix_pull_and_cached_repull(s3, tmp_path):
    client, bucket, _ = s3
    cache = Cache(tmp_path / "cache")
    path = download(f"s3://{bucket}/sklearn/iris", cache=cache)
    assert sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()) == [
        "extra/notes.txt",
        "model.joblib",
    ]
    mtime = (path / "model.joblib").stat().st_mtime_ns
    assert download(f"s3://{bucket}/sklearn/iris", cache=cache) == path
    assert (path / "model.joblib").stat().st_mtime_ns == mtime and len(cache.entries()) == 1
    client.put_object(Bucket=bucket, Key="sklearn/iris/extra/notes.txt", Body=b"changed")
    assert download(f"s3://{bucket}/sklearn/iris", cache=cache) != path
    assert len(cache.entries()) == 2


def test_exact_object_and_archive(s3, tmp_path):
    _, bucket, _ = s3
    cache = Cache(tmp_path / "cache")
    exact = download(f"s3://{bucket}/sklearn/iris/model.joblib", cache=cache)
    assert [p.name for p in exact.iterdir()] == ["model.joblib"]
    unpacked = download(f"s3://{bucket}/archives/iris.tar.gz", cache=cache)
    assert [p.name for p in unpacked.iterdir()] == ["model.joblib"]


def test_missing_bucket_and_prefix_are_not_found(s3, tmp_path):
    _, bucket, _ = s3
    with pytest.raises(NotFound):
        download("s3://no-such-bucket-xyz/model", cache=Cache(tmp_path / "c"))
    with pytest.raises(NotFound):
        download(f"s3://{bucket}/missing/prefix", cache=Cache(tmp_path / "c"))


def test_serve_from_s3(s3, tmp_path, logs):
    _, bucket, env = s3
    server = srv.start(
        ["serve", "--storage-uri", f"s3://{bucket}/sklearn/iris", "--model-name", "iris"],
        logs,
        env={**env, "MODELPLANE_CACHE_DIR": str(tmp_path / "cache")},
    )
    try:
        assert httpx.post(f"{server.http}/v1/models/iris:predict", json=IRIS_V1).json() == {"predictions": [1, 1]}
    finally:
        server.stop()


@pytest.mark.parametrize(
    "code,expected",
    [
        ("NoSuchKey", NotFound),
        ("AccessDenied", AccessDenied),
        ("InvalidAccessKeyId", AccessDenied),
        ("SlowDown", Transient),
    ],
)
def test_vendor_errors_are_translated_and_chained(code, expected):
    # unit-level: moto does not enforce credentials, so the mapping itself is checked on botocore's own error type
    err = ClientError({"Error": {"Code": code, "Message": "m"}}, "GetObject")
    translated = _translate(err, "s3://b/k")
    assert isinstance(translated, expected) and "s3://b/k" in str(translated)


def test_an_s3_pull_imports_no_other_vendor_sdk(s3, tmp_path):
    _, bucket, env = s3
    code = (
        "import sys; from pathlib import Path; from modelplane.storage import download; "
        "from modelplane.storage.cache import Cache; "
        f"download('s3://{bucket}/sklearn/iris', cache=Cache(Path({str(tmp_path / 'c')!r}))); "
        "print(sorted(m for m in ('google', 'azure', 'huggingface_hub', 'boto3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env_with(env))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['boto3']"


def env_with(extra):
    import os

    return {**os.environ, **extra}


def test_ignore_patterns_skip_objects_before_download(s3, tmp_path, monkeypatch):
    _, bucket, _ = s3
    monkeypatch.setenv("STORAGE_IGNORE_PATTERNS", "extra/*")
    path = download(f"s3://{bucket}/sklearn/iris", cache=Cache(tmp_path / "cache"))
    assert [p.relative_to(path).as_posix() for p in path.rglob("*")] == ["model.joblib"]


def test_wrong_credentials_are_access_denied_on_a_server_that_checks_them(tmp_path, monkeypatch, iris_dir):
    from support.node_servers import S3RVER_KEY, S3rver

    server = S3rver(tmp_path)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        client = boto3.client(
            "s3", endpoint_url=server.endpoint, aws_access_key_id=S3RVER_KEY, aws_secret_access_key=S3RVER_KEY
        )
        client.create_bucket(Bucket="private")
        client.put_object(Bucket="private", Key="iris/model.joblib", Body=(iris_dir / "model.joblib").read_bytes())
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "someone-else")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        with pytest.raises(AccessDenied) as err:
            download("s3://private/iris", cache=Cache(tmp_path / "denied"))
        assert "not-the-secret" not in str(err.value) and isinstance(err.value.__cause__, ClientError)
        assert not list((tmp_path / "denied").rglob("model.joblib"))  # nothing half-written left behind
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3RVER_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3RVER_KEY)
        path = download("s3://private/iris", cache=Cache(tmp_path / "ok"))
        assert [p.name for p in path.iterdir()] == ["model.joblib"]
    finally:
        server.stop()
