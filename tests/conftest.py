"""Shared fixtures: trained sample models and real server processes on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import server as srv

IRIS_V1 = {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}
IRIS_V2 = {
    "inputs": [
        {"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}
    ]
}


@pytest.fixture(scope="session")
def iris_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modelplane.samples.iris import train_sklearn

    return train_sklearn(tmp_path_factory.mktemp("iris") / "model")


@pytest.fixture(scope="session")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="module")
def iris_server(iris_dir: Path, logs: Path) -> Iterator[srv.RunningServer]:
    server = srv.start(["serve", "--model-dir", str(iris_dir), "--model-name", "sklearn-iris"], logs)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def test_models_server(logs: Path) -> Iterator[srv.RunningServer]:
    """Echo, async, failing, explaining and never-ready models in one process (via the Python API)."""
    server = srv.start(
        ["Echo:echo", "AsyncAdder:adder", "Failing:failing", "Explainer:explainer", "NeverReady:broken"],
        logs,
        module="support.launch",
        ready=False,
    )
    yield server
    server.stop()
