"""Azure Blob (https://<account>.blob.core.windows.net/...) against Azurite on loopback, through azure-storage-blob."""

from __future__ import annotations

import httpx
import pytest
from azure.storage.blob import BlobServiceClient
from conftest import IRIS_V1
from support import server as srv
from support.node_servers import AZURE_ACCOUNT as ACCOUNT
from support.node_servers import AZURE_KEY as KEY
from support.node_servers import Azurite

from modelplane.storage import AccessDenied, NotFound, download, provider_for
from modelplane.storage.azure import AzureProvider
from modelplane.storage.cache import Cache

BASE = f"https://{ACCOUNT}.blob.core.windows.net"
AZURE_VARS = [
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_BLOB_ENDPOINT",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
]


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    server = Azurite(tmp_path_factory.mktemp("azurite"))
    service = BlobServiceClient.from_connection_string(server.connection_string())
    yield server, service
    server.stop()


@pytest.fixture
def blobs(azurite, monkeypatch, iris_dir, request):
    server, service = azurite
    for var in AZURE_VARS:
        monkeypatch.delenv(var, raising=False)
    name = request.node.name.lower().replace("_", "-")[:40].strip("-")
    private = service.create_container(f"p-{name}")
    public = service.create_container(f"o-{name}", public_access="container")
    model = (iris_dir / "model.joblib").read_bytes()
    for container in (private, public):
        container.upload_blob("sklearn/iris/model.joblib", model)
        container.upload_blob("sklearn/iris/extra/notes.txt", b"n")
    return server, private.container_name, public.container_name


def files(path):
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())


def test_account_hosts_route_to_the_azure_provider_and_other_https_to_http():
    assert isinstance(provider_for(f"{BASE}/models/iris"), AzureProvider)
    assert not isinstance(provider_for("https://example.com/model.joblib"), AzureProvider)


def test_connection_string_pull_cached_repull_and_change(blobs, tmp_path, monkeypatch):
    server, private, _ = blobs
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string())
    cache = Cache(tmp_path / "cache")
    uri = f"{BASE}/{private}/sklearn/iris"
    path = download(uri, cache=cache)
    assert files(path) == ["extra/notes.txt", "model.joblib"]
    assert download(uri, cache=cache) == path and len(cache.entries()) == 1
    service = BlobServiceClient.from_connection_string(server.connection_string())
    service.get_container_client(private).upload_blob("sklearn/iris/extra/notes.txt", b"changed", overwrite=True)
    changed = download(uri, cache=cache)
    assert changed != path and (changed / "extra/notes.txt").read_bytes() == b"changed"
    assert files(download(f"{uri}/model.joblib", cache=cache)) == ["model.joblib"]


def test_account_key_works_and_a_wrong_key_is_access_denied(blobs, tmp_path, monkeypatch):
    server, private, _ = blobs
    monkeypatch.setenv("AZURE_STORAGE_BLOB_ENDPOINT", server.endpoint)
    monkeypatch.setenv("AZURE_STORAGE_ACCESS_KEY", KEY)
    assert files(download(f"{BASE}/{private}/sklearn/iris", cache=Cache(tmp_path / "a"))) == [
        "extra/notes.txt",
        "model.joblib",
    ]
    wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ=="
    monkeypatch.setenv("AZURE_STORAGE_ACCESS_KEY", wrong)
    with pytest.raises(AccessDenied) as err:
        download(f"{BASE}/{private}/sklearn/iris", cache=Cache(tmp_path / "b"))
    assert wrong not in str(err.value) and not list((tmp_path / "b").rglob("model.joblib"))


def test_anonymous_reads_public_containers_only(blobs, tmp_path, monkeypatch):
    server, private, public = blobs
    monkeypatch.setenv("AZURE_STORAGE_BLOB_ENDPOINT", server.endpoint)
    assert files(download(f"{BASE}/{public}/sklearn/iris", cache=Cache(tmp_path / "a"))) == [
        "extra/notes.txt",
        "model.joblib",
    ]
    with pytest.raises((AccessDenied, NotFound)):
        download(f"{BASE}/{private}/sklearn/iris", cache=Cache(tmp_path / "b"))


def test_missing_container_and_prefix_are_not_found(blobs, tmp_path, monkeypatch):
    server, private, _ = blobs
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string())
    with pytest.raises(NotFound):
        download(f"{BASE}/no-such-container/model", cache=Cache(tmp_path / "c"))
    with pytest.raises(NotFound):
        download(f"{BASE}/{private}/missing/prefix", cache=Cache(tmp_path / "c"))


def test_serve_from_azure(blobs, tmp_path, logs):
    server, private, _ = blobs
    running = srv.start(
        ["serve", "--storage-uri", f"{BASE}/{private}/sklearn/iris", "--model-name", "iris"],
        logs,
        env={
            "AZURE_STORAGE_CONNECTION_STRING": server.connection_string(),
            "MODELPLANE_CACHE_DIR": str(tmp_path / "c"),
        },
    )
    try:
        assert httpx.post(f"{running.http}/v1/models/iris:predict", json=IRIS_V1).json() == {"predictions": [1, 1]}
    finally:
        running.stop()
