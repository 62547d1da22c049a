"""gs:// against a real GCS-compatible server on loopback (gcp-storage-emulator, via STORAGE_EMULATOR_HOST)."""

from __future__ import annotations

import io
import tarfile

import httpx
import pytest
from conftest import IRIS_V1
from gcp_storage_emulator.server import create_server
from google.api_core import exceptions as gexc
from support import server as srv

from modelplane.storage import AccessDenied, NotFound, Transient, download
from modelplane.storage.cache import Cache
from modelplane.storage.gcs import _translate


@pytest.fixture(scope="module")
def emulator():
    port = srv.free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def gcs(emulator, monkeypatch, iris_dir, request):
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator)
    client = storage.Client()
    bucket = client.create_bucket(f"models-{request.node.name.lower().replace('_', '-')[:40]}")
    model = (iris_dir / "model.joblib").read_bytes()
    bucket.blob("sklearn/iris/model.joblib").upload_from_string(model)
    bucket.blob("sklearn/iris/extra/notes.txt").upload_from_string(b"n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("model.joblib")
        info.size = len(model)
        tf.addfile(info, io.BytesIO(model))
    bucket.blob("archives/iris.tar.gz").upload_from_string(buf.getvalue())
    return bucket


def files(path):
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())


def test_prefix_pull_cached_repull_and_change(gcs, tmp_path):
    cache = Cache(tmp_path / "cache")
    uri = f"gs://{gcs.name}/sklearn/iris"
    path = download(uri, cache=cache)
    assert files(path) == ["extra/notes.txt", "model.joblib"]
    mtime = (path / "model.joblib").stat().st_mtime_ns
    assert download(uri, cache=cache) == path and (path / "model.joblib").stat().st_mtime_ns == mtime
    gcs.blob("sklearn/iris/extra/notes.txt").upload_from_string(b"changed")  # a new generation
    changed = download(uri, cache=cache)
    assert changed != path and (changed / "extra/notes.txt").read_bytes() == b"changed"


def test_exact_object_and_archive(gcs, tmp_path):
    cache = Cache(tmp_path / "cache")
    assert files(download(f"gs://{gcs.name}/sklearn/iris/model.joblib", cache=cache)) == ["model.joblib"]
    assert files(download(f"gs://{gcs.name}/archives/iris.tar.gz", cache=cache)) == ["model.joblib"]


def test_missing_bucket_and_prefix_are_not_found(gcs, tmp_path):
    with pytest.raises(NotFound):
        download("gs://no-such-bucket-xyz/model", cache=Cache(tmp_path / "c"))
    with pytest.raises(NotFound):
        download(f"gs://{gcs.name}/missing/prefix", cache=Cache(tmp_path / "c"))


def test_serve_from_gcs(gcs, emulator, tmp_path, logs):
    server = srv.start(
        ["serve", "--storage-uri", f"gs://{gcs.name}/sklearn/iris", "--model-name", "iris"],
        logs,
        env={"STORAGE_EMULATOR_HOST": emulator, "MODELPLANE_CACHE_DIR": str(tmp_path / "cache")},
    )
    try:
        assert httpx.post(f"{server.http}/v1/models/iris:predict", json=IRIS_V1).json() == {"predictions": [1, 1]}
    finally:
        server.stop()


@pytest.mark.parametrize(
    "exc,expected",
    [(gexc.NotFound("x"), NotFound), (gexc.Forbidden("x"), AccessDenied), (gexc.ServiceUnavailable("x"), Transient)],
)
def test_vendor_errors_are_translated(exc, expected):
    # unit-level: the emulator does not check credentials, so the mapping is checked on the SDK's own types
    assert isinstance(_translate(exc, "gs://b/k"), expected)
