"""Test support: the embedded platform as a user runs it (`modelplane up` in a subprocess on free ports), its CLI,
and KServe sample manifests with a local storageUri."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml
from support.observe import wait_for
from support.server import free_port

DATA = Path(__file__).resolve().parents[1] / "data" / "kserve"


def cli(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "MODELPLANE_HOME": str(home)}
    out = subprocess.run([sys.executable, "-m", "modelplane", *args], capture_output=True, text=True, env=env)
    if check:
        assert out.returncode == 0, out.stderr
    return out


class Platform:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.port, self.api_port, self.grpc_port = free_port(), free_port(), free_port()
        self.proc: subprocess.Popen | None = None

    def up(self, *extra: str) -> None:
        tests = Path(__file__).resolve().parents[1]  # runtime_modules: the sample's `python -m iris_transformer`
        env = {**os.environ, "MODELPLANE_HOME": str(self.home), "PYTHONPATH": f"{tests / 'runtime_modules'}:{tests}"}
        argv = [sys.executable, "-m", "modelplane", "up", "--port", str(self.port), "--api-port", str(self.api_port)]
        argv += ["--grpc-port", str(self.grpc_port), "--file-root", tempfile.gettempdir(), *extra]
        self.log = (self.home / "up.log").open("ab")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: ok(f"http://127.0.0.1:{self.api_port}/healthz"), "the control plane API")
        except AssertionError:
            self.stop()  # nothing it started is left running
            raise

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(60)

    def shutdown(self) -> None:
        """Stop the platform and wait until every replica it ran has exited."""
        pids = self.replica_pids()
        self.stop()
        wait_for(lambda: not any(alive(pid) for pid in pids), "every replica to stop", timeout=30)

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        """The API's bearer token, as the CLI sends it."""
        return {"authorization": f"Bearer {(self.home / 'token').read_text().strip()}"}

    def isvc(self, name: str) -> dict:
        return httpx.get(
            f"http://127.0.0.1:{self.api_port}/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/{name}",
            headers=self.headers,
        ).json()

    def ready(self, name: str) -> bool:
        conditions = (self.isvc(name).get("status") or {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def replica_pids(self) -> list[int]:
        try:
            saved = json.loads((self.home / "replicas.json").read_text())
        except FileNotFoundError:
            return []
        return [r["pid"] for r in saved["replicas"] + saved.get("terminating", [])]  # running or draining


def ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone; ESRCH while the kernel is reaping it
        return False


def manifest(tmp_path: Path, uri: Path, sample: str = "sklearn-iris.yaml", **predictor) -> Path:
    doc = yaml.safe_load((DATA / sample).read_text())
    doc["spec"]["predictor"]["model"]["storageUri"] = str(uri)
    doc["spec"]["predictor"].update(predictor)
    for k, v in list(doc["spec"]["predictor"].items()):
        if v is None:
            del doc["spec"]["predictor"][k]
    path = tmp_path / f"isvc-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@contextlib.contextmanager
def applied(tmp_path: Path, documents: list[dict]) -> Iterator[Platform]:
    """A platform of its own in `tmp_path/home` with `documents` applied (`modelplane apply -f`); shut down after."""
    (tmp_path / "manifests.yaml").write_text(yaml.safe_dump_all(documents))
    home = tmp_path / "home"
    home.mkdir()
    plat = Platform(home)
    plat.up()
    try:
        cli(home, "apply", "-f", str(tmp_path / "manifests.yaml"))
        yield plat
    finally:
        plat.shutdown()
