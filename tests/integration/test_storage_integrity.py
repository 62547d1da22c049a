"""Storage integrity and confinement, against a real HTTP server on loopback: a model is marked complete only when
its size is proven, content-encoded downloads work, and pvc:// / local paths never leave their roots."""

from __future__ import annotations

import shutil
import tarfile

import pytest
from support.http_store import Store

from modelplane.storage import AccessDenied, InvalidURI, StorageError, download
from modelplane.storage.cache import Cache


@pytest.fixture
def store(tmp_path, iris_dir):
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(iris_dir / "model.joblib", root / "model.joblib")
    with tarfile.open(root / "iris.tar.gz", "w:gz") as tf:
        tf.add(iris_dir / "model.joblib", arcname="model.joblib")
    with Store(root) as s:
        yield s


@pytest.fixture
def cache(tmp_path):
    return Cache(tmp_path / "cache")


def test_a_body_cut_short_without_content_length_is_never_cached(store, cache, monkeypatch):
    """The report: the cut download was cached with its SUCCESS marker although HEAD gave the full length."""
    monkeypatch.setenv("MODELPLANE_STORAGE_ATTEMPTS", "1")
    store.cut_unframed_next = 100
    with pytest.raises(StorageError, match="HEAD announced"):
        download(f"{store.url}/model.joblib", cache=cache)
    assert cache.entries() == []
    store.cut_unframed_next = 0
    path = download(f"{store.url}/model.joblib", cache=cache)  # the next pull gets the whole model
    assert (path / "model.joblib").read_bytes() == (store.root / "model.joblib").read_bytes()


def test_a_cut_body_is_retried_until_whole(store, cache):
    store.cut_unframed_next = 2
    path = download(f"{store.url}/model.joblib", cache=cache)
    assert (path / "model.joblib").read_bytes() == (store.root / "model.joblib").read_bytes()
    assert store.gets["/model.joblib"] == 3


@pytest.mark.parametrize("name", ["model.joblib", "iris.tar.gz"])
def test_gzip_content_encoding_is_decoded_and_verified(store, cache, name):
    store.gzip = True
    path = download(f"{store.url}/{name}", cache=cache)
    assert (path / "model.joblib").read_bytes() == (store.root / "model.joblib").read_bytes()


def test_no_lock_files_stay_behind(store, cache):
    download(f"{store.url}/model.joblib", cache=cache)
    download(f"{store.url}/iris.tar.gz", cache=cache)
    assert [p.name for p in cache.root.iterdir() if p.name.endswith(".lock")] == []


def test_pvc_paths_stay_inside_their_claim(tmp_path, iris_dir, monkeypatch, cache):
    monkeypatch.setenv("MODELPLANE_PVC_ROOT", str(tmp_path / "pvcs"))
    claim = tmp_path / "pvcs" / "claim"
    claim.mkdir(parents=True)
    (tmp_path / "pvcs" / "other").mkdir()
    (tmp_path / "secret").mkdir()
    shutil.copy(iris_dir / "model.joblib", tmp_path / "secret")
    (claim / "link").symlink_to(tmp_path / "secret")
    for uri in (
        "pvc://claim/../../secret",
        "pvc://claim/%2e%2e/%2e%2e/secret",
        "pvc://claim/../other",
        "pvc://claim/link",  # a symlink inside the claim that points out of it
    ):
        with pytest.raises(AccessDenied, match="outside"):
            download(uri, cache=cache)
    for uri in ("pvc://../secret", "pvc://cl..aim/x", "pvc://Claim_1/x"):
        with pytest.raises(InvalidURI):
            download(uri, cache=cache)


def test_file_roots_confine_local_paths(tmp_path, iris_dir, monkeypatch, cache):
    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(iris_dir, root / "iris")
    (root / "escape").symlink_to(iris_dir)
    monkeypatch.setenv("MODELPLANE_FILE_ROOTS", str(root))
    assert download(f"file://{root}/iris", cache=cache) == (root / "iris").resolve()
    assert download(str(root / "iris"), cache=cache) == (root / "iris").resolve()
    for uri in (str(iris_dir), f"file://{iris_dir}", f"{root}/../../", f"file://{root}/escape", "/etc"):
        with pytest.raises(AccessDenied, match="outside"):
            download(uri, cache=cache)


def test_namespaces_never_share_a_pulled_model_directory(store, cache):
    a = download(f"{store.url}/model.joblib", cache=cache, scope="team-a")
    b = download(f"{store.url}/model.joblib", cache=cache, scope="team-b")
    assert a != b and (a / "model.joblib").read_bytes() == (b / "model.joblib").read_bytes()
    assert download(f"{store.url}/model.joblib", cache=cache, scope="team-a") == a
    assert store.gets["/model.joblib"] == 2
