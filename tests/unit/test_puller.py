"""The model puller's decisions, with real files and a recording double of the server: what it pulls, swaps, removes
and tells the server; a list it cannot read changes nothing; hostile names never make a path; a failed download is
not retried until its spec changes; a load the server could not take yet is asked again."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from modelplane.storage.puller import MARKER, Puller, read_models, spec_digest


def model(root: Path, name: str, content: str) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "model.joblib").write_text(content)
    return d


def write(config: Path, entries: object) -> None:
    tmp = config / ".tmp"
    tmp.write_text(json.dumps(entries))
    os.replace(tmp, config / "models.json")


def entry(name: str, uri: Path | str) -> dict:
    return {"modelName": name, "modelSpec": {"storageUri": str(uri), "framework": "sklearn", "memory": "1Mi"}}


class Server:
    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.calls: list[tuple[str, str]] = []

    def __call__(self, name: str, action: str) -> bool:
        self.calls.append((name, action))
        return self.up


def settle(puller: Puller, steps: int = 50) -> None:
    """Steps until no download is running (they run in threads)."""
    for _ in range(steps):
        puller.step()
        if not any(t.is_alive() for t in puller._pulls.values()):
            puller.step()
            return
        time.sleep(0.02)
    raise AssertionError("downloads did not finish")


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path, Path]:
    storage, config, models = tmp_path / "storage", tmp_path / "config", tmp_path / "models"
    config.mkdir()
    models.mkdir()
    model(storage, "v1", "one")
    model(storage, "v2", "two")
    return storage, config, models


def test_models_are_pulled_swapped_and_removed_and_the_server_told(dirs: tuple[Path, Path, Path]) -> None:
    storage, config, models = dirs
    server = Server()
    puller = Puller(config, models, server)
    write(config, [entry("a", storage / "v1"), entry("b", storage / "v2")])
    settle(puller)
    assert (models / "a" / "model.joblib").read_text() == "one" and (models / "b" / "model.joblib").read_text() == "two"
    assert sorted(server.calls) == [("a", "load"), ("b", "load")]
    digest = spec_digest(entry("a", storage / "v1")["modelSpec"])
    assert (models / "a" / f"{MARKER}{digest}").exists()

    server.calls.clear()
    write(config, [entry("a", storage / "v2"), entry("b", storage / "v2")])
    settle(puller)
    assert (models / "a" / "model.joblib").read_text() == "two" and server.calls == [("a", "load")]  # reloaded

    server.calls.clear()
    write(config, [entry("a", storage / "v2")])
    settle(puller)
    assert not (models / "b").exists() and server.calls == [("b", "unload")]

    server.calls.clear()
    settle(Puller(config, models, server))  # a restart: the markers say what is there
    assert server.calls == []


def test_a_list_that_cannot_be_read_changes_nothing(dirs: tuple[Path, Path, Path]) -> None:
    storage, config, models = dirs
    puller = Puller(config, models, Server())
    write(config, [entry("a", storage / "v1")])
    settle(puller)
    (config / "models.json").write_text("[{not json")
    settle(puller)
    write(config, {"modelName": "a"})  # not a list
    settle(puller)
    assert (models / "a" / "model.joblib").exists()
    assert read_models(config) is None
    assert read_models(config / "nowhere") == {}  # no list yet: no models


def test_hostile_entries_are_skipped(dirs: tuple[Path, Path, Path]) -> None:
    storage, config, models = dirs
    puller = Puller(config, models, Server())
    hostile = ["..", "../x", "a/b", "", ".hidden", "x" * 10 + "\x00"]
    write(config, [entry(n, storage / "v1") for n in hostile] + [{"modelName": "ok", "modelSpec": {}}, "junk"])
    settle(puller)
    assert list(models.iterdir()) == [] and not (models.parent / "x").exists()


def test_a_failed_download_waits_for_a_new_spec_and_a_refused_load_is_asked_again(
    dirs: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelplane.storage import puller as module

    storage, config, models = dirs
    fetches: list[str] = []
    real = module.fetch_model
    monkeypatch.setattr(module, "fetch_model", lambda uri, *a, **k: fetches.append(uri) or real(uri, *a, **k))
    server = Server(up=False)
    puller = Puller(config, models, server)
    write(config, [entry("a", storage / "missing")])
    settle(puller)
    settle(puller)
    assert not (models / "a").exists() and fetches == [str(storage / "missing")]  # tried once, not every step

    write(config, [entry("a", storage / "v1")])
    settle(puller)
    loads = server.calls.count(("a", "load"))
    puller.step()
    assert server.calls.count(("a", "load")) == loads + 1  # the server was not reachable: asked again
    server.up = True
    puller.step()
    puller.step()
    assert server.calls.count(("a", "load")) == loads + 2  # taken: not asked any more
