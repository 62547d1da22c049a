"""hf:// against a real Hub-compatible HTTP server on loopback (HF_ENDPOINT), through huggingface_hub."""

from __future__ import annotations

import httpx
import pytest
from conftest import IRIS_V1
from support import server as srv
from support.hf_hub import Hub

from modelplane.storage import AccessDenied, InvalidURI, NotFound, download
from modelplane.storage.cache import Cache


@pytest.fixture
def hub(monkeypatch, iris_dir):
    hub = Hub()
    hub.publish("acme/iris", {"model.joblib": (iris_dir / "model.joblib").read_bytes(), "docs/README.md": b"# iris"})
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield hub
    hub.close()


def files(path):
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())


def test_pull_keeps_the_repo_layout_and_repull_downloads_nothing(hub, tmp_path):
    cache = Cache(tmp_path / "cache")
    path = download("hf://acme/iris", cache=cache)
    assert files(path) == ["docs/README.md", "model.joblib"]  # no huggingface_hub bookkeeping left behind
    assert download("hf://acme/iris", cache=cache) == path
    assert hub.downloads == {"model.joblib": 1, "docs/README.md": 1}


def test_a_moved_branch_is_a_new_version_and_a_pinned_commit_is_stable(hub, tmp_path, iris_dir):
    cache = Cache(tmp_path / "cache")
    first_sha = hub.repos["acme/iris"].refs["main"]
    old = download("hf://acme/iris", cache=cache)
    hub.publish("acme/iris", {"model.joblib": (iris_dir / "model.joblib").read_bytes(), "v2.txt": b"2"})
    new = download("hf://acme/iris", cache=cache)
    assert new != old and "v2.txt" in files(new)
    pinned = download(f"hf://acme/iris:{first_sha}", cache=cache)
    assert files(pinned) == ["docs/README.md", "model.joblib"]


def test_allow_patterns_skip_unwanted_files_before_download(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("STORAGE_ALLOW_PATTERNS", '["*.joblib"]')
    path = download("hf://acme/iris", cache=Cache(tmp_path / "cache"))
    assert files(path) == ["model.joblib"] and "docs/README.md" not in hub.downloads


def test_missing_repo_and_revision_are_not_found(hub, tmp_path):
    with pytest.raises(NotFound):
        download("hf://acme/missing", cache=Cache(tmp_path / "c"))
    with pytest.raises(NotFound):
        download("hf://acme/iris:no-such-branch", cache=Cache(tmp_path / "c"))
    with pytest.raises(InvalidURI):
        download("hf://just-a-name", cache=Cache(tmp_path / "c"))


def test_private_repo_needs_the_right_token(hub, tmp_path, monkeypatch):
    hub.publish("acme/private", {"model.joblib": b"m"}, token="right-token")
    with pytest.raises(AccessDenied) as err:
        download("hf://acme/private", cache=Cache(tmp_path / "c"))
    assert "right-token" not in str(err.value)
    monkeypatch.setenv("HF_TOKEN", "wrong-token")
    with pytest.raises(AccessDenied) as err:
        download("hf://acme/private", cache=Cache(tmp_path / "c"))
    assert "wrong-token" not in str(err.value)
    monkeypatch.setenv("HF_TOKEN", "right-token")
    assert files(download("hf://acme/private", cache=Cache(tmp_path / "c"))) == ["model.joblib"]


def test_serve_from_hf(hub, tmp_path, logs):
    server = srv.start(
        ["serve", "--storage-uri", "hf://acme/iris", "--model-name", "iris"],
        logs,
        env={"HF_ENDPOINT": hub.url, "MODELPLANE_CACHE_DIR": str(tmp_path / "cache")},
    )
    try:
        assert httpx.post(f"{server.http}/v1/models/iris:predict", json=IRIS_V1).json() == {"predictions": [1, 1]}
    finally:
        server.stop()
