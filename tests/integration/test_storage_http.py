"""Storage against a real HTTP server on loopback: pull, cache, retry, errors, archives, serve from a URI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import threading

import httpx
import pytest
from conftest import IRIS_V1
from support import server as srv
from support.http_store import Store

from modelplane.storage import AccessDenied, InvalidURI, NotFound, StorageError, download
from modelplane.storage.cache import Cache


@pytest.fixture
def store(tmp_path, iris_dir):
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(iris_dir / "model.joblib", root / "model.joblib")
    with tarfile.open(root / "iris.tar.gz", "w:gz") as tf:
        tf.add(iris_dir / "model.joblib", arcname="model.joblib")
    (root / "notes.txt").write_text("not a model")
    with Store(root) as s:
        yield s


@pytest.fixture
def cache(tmp_path):
    return Cache(tmp_path / "cache")


def test_pull_single_file_then_cached_pull_copies_nothing(store, cache):
    first = download(f"{store.url}/model.joblib", cache=cache)
    assert (first / "model.joblib").stat().st_size > 0
    assert store.gets == {"/model.joblib": 1}
    again = download(f"{store.url}/model.joblib", cache=cache)
    assert again == first and store.gets == {"/model.joblib": 1}
    [entry] = cache.entries()
    assert entry.uri == f"{store.url}/model.joblib" and entry.size == (first / "model.joblib").stat().st_size


def test_changed_object_is_downloaded_again(store, cache):
    import time

    download(f"{store.url}/model.joblib", cache=cache)
    path = store.root / "model.joblib"
    os.utime(path, (time.time() + 10, time.time() + 10))  # new Last-Modified → new version
    download(f"{store.url}/model.joblib", cache=cache)
    assert store.gets["/model.joblib"] == 2 and len(cache.entries()) == 2


def test_concurrent_pulls_download_once(store, cache):
    results, errors = [], []

    def pull():
        try:
            results.append(download(f"{store.url}/iris.tar.gz", cache=cache))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=pull) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    assert store.gets == {"/iris.tar.gz": 1}
    assert (results[0] / "model.joblib").exists() and not (results[0] / "iris.tar.gz").exists()


def test_dropped_connection_is_retried(store, cache):
    store.drop_next = 2
    path = download(f"{store.url}/model.joblib", cache=cache)
    assert store.gets["/model.joblib"] == 3
    assert (path / "model.joblib").read_bytes() == (store.root / "model.joblib").read_bytes()


def test_persistent_failure_is_a_clear_error_and_leaves_no_partial_model(store, cache, monkeypatch):
    store.drop_next = 100
    with pytest.raises(StorageError, match=r"got \d+ of \d+ bytes|failed"):
        download(f"{store.url}/model.joblib", cache=cache)
    assert cache.entries() == []
    assert not [p for p in cache.root.iterdir() if not p.name.endswith(".lock")]


def test_missing_object_wrong_credentials_and_bad_uris(store, cache, monkeypatch):
    with pytest.raises(NotFound):
        download(f"{store.url}/nope.joblib", cache=cache)
    store.required_header = ("authorization", "Bearer s3cret")
    with pytest.raises(AccessDenied) as info:
        download(f"http://user:pw@127.0.0.1:{store.server.server_address[1]}/model.joblib?sig=abc", cache=cache)
    assert "pw" not in str(info.value) and "sig=abc" not in str(info.value)
    monkeypatch.setenv("127.0.0.1-headers", '{"authorization": "Bearer s3cret"}')
    assert (download(f"{store.url}/model.joblib", cache=cache) / "model.joblib").exists()
    with pytest.raises(InvalidURI, match="unsupported"):
        download("ftp://example/model", cache=cache)


def test_content_type_rules(store, cache):
    with pytest.raises(StorageError, match="content type"):
        download(f"{store.url}/notes.txt", cache=cache)


def test_local_paths_pvc_and_patterns(tmp_path, iris_dir, monkeypatch, cache):
    assert download(str(iris_dir), cache=cache) == iris_dir
    assert download(f"file://{iris_dir}", cache=cache) == iris_dir
    monkeypatch.setenv("MODELPLANE_PVC_ROOT", str(tmp_path / "pvcs"))
    (tmp_path / "pvcs" / "claim" / "models").mkdir(parents=True)
    shutil.copy(iris_dir / "model.joblib", tmp_path / "pvcs" / "claim" / "models")
    (tmp_path / "pvcs" / "claim" / "models" / "README.md").write_text("x")
    assert download("pvc://claim/models", cache=cache) == tmp_path / "pvcs" / "claim" / "models"
    monkeypatch.setenv("STORAGE_IGNORE_PATTERNS", '["*.md"]')
    out = download("pvc://claim/models", tmp_path / "dest", cache=cache)
    assert sorted(p.name for p in out.iterdir()) == ["model.joblib"]
    with pytest.raises(NotFound):
        download("pvc://claim/missing", cache=cache)


def test_serve_from_storage_uri_and_storage_initializer(store, tmp_path, logs):
    env = {"MODELPLANE_CACHE_DIR": str(tmp_path / "cache")}
    server = srv.start(["serve", "--storage-uri", f"{store.url}/iris.tar.gz", "--model-name", "iris"], logs, env=env)
    try:
        r = httpx.post(f"{server.http}/v1/models/iris:predict", json=IRIS_V1)
        assert r.json() == {"predictions": [1, 1]}
    finally:
        server.stop()

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "modelplane", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            check=False,
        )

    out = cli(
        "storage-initializer",
        f"{store.url}/model.joblib",
        str(tmp_path / "a"),
        f"{store.url}/iris.tar.gz",
        str(tmp_path / "b"),
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "a" / "model.joblib").exists() and (tmp_path / "b" / "model.joblib").exists()
    bad = cli("storage-initializer", f"{store.url}/nope.bst", str(tmp_path / "c"))
    assert bad.returncode == 1 and "not found" in bad.stderr
    ls = cli("cache", "ls")
    assert "iris.tar.gz" in ls.stdout and "model.joblib" in ls.stdout
    pruned = cli("cache", "prune")
    assert "removed 2 entries" in pruned.stdout


def test_two_processes_pulling_the_same_uri_download_once(store, tmp_path):
    """Two replicas starting together: the cache lock is per open file, so processes serialise like threads."""
    env = {**os.environ, "MODELPLANE_CACHE_DIR": str(tmp_path / "cache")}
    code = "import sys; from modelplane.storage import download; print(download(sys.argv[1]))"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, f"{store.url}/iris.tar.gz"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    assert len({out.strip() for out, _ in outputs}) == 1
    assert store.gets == {"/iris.tar.gz": 1}


def test_download_reports_progress(store, cache):
    class Recorder:
        def __init__(self):
            self.totals, self.advanced = [], 0

        def start(self, total):
            self.totals.append(total)

        def advance(self, n):
            self.advanced += n

    rec = Recorder()
    store.drop_next = 1  # one failed attempt: the retry starts the count over
    download(f"{store.url}/model.joblib", cache=cache, progress=rec)
    size = (store.root / "model.joblib").stat().st_size
    assert rec.totals == [size, size]
    assert size <= rec.advanced <= size + size // 2  # the dropped attempt may or may not deliver its half
