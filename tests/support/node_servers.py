"""Test support: storage servers from npm (installed into .cache/ by scripts/setup.sh) on free loopback ports."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
AZURE_ACCOUNT = "devstoreaccount1"
# Azurite's documented development account key (public, the same on every installation)
AZURE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
S3RVER_KEY = "S3RVER"  # s3rver's built-in access key id and secret


class NodeServer:
    """Runs `.cache/<package>/node_modules/.bin/<binary> ARGS` (ARGS may contain {port}) until stop()."""

    def __init__(self, package: str, binary: str, args: list[str], workdir: Path) -> None:
        path = ROOT / ".cache" / package / "node_modules" / ".bin" / binary
        if not path.exists():
            raise RuntimeError(f"{package} is not installed at {path}; run scripts/setup.sh (needs npm)")
        if shutil.which("node") is None:
            raise RuntimeError(f"{package} needs node on PATH")
        self.port = free_port()
        self.log = (workdir / f"{binary}.log").open("wb")
        argv = [str(path), *(a.format(port=self.port, workdir=workdir) for a in args)]
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{binary} exited with {self.proc.returncode}; see {self.log.name}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{binary} did not start listening within 30 s")

    def stop(self) -> None:
        self.proc.kill()  # test data only: nothing to flush, and graceful stops take seconds
        self.proc.wait()
        self.log.close()


class Azurite(NodeServer):
    def __init__(self, workdir: Path) -> None:
        args = ["--blobHost", "127.0.0.1", "--blobPort", "{port}", "--inMemoryPersistence"]
        super().__init__("azurite", "azurite-blob", [*args, "--skipApiVersionCheck", "--loose", "--silent"], workdir)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{AZURE_ACCOUNT}"

    def connection_string(self, key: str = AZURE_KEY) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURE_ACCOUNT};AccountKey={key};BlobEndpoint={self.endpoint};"
        )


class S3rver(NodeServer):
    def __init__(self, workdir: Path) -> None:
        super().__init__(
            "s3rver", "s3rver", ["-d", "{workdir}", "-a", "127.0.0.1", "-p", "{port}", "--silent"], workdir
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"
