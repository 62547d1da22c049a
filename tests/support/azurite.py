"""Test support: Azurite (Azure Storage's emulator, installed from npm by scripts/setup.sh) on a free loopback port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# Azurite's documented development account key (public, the same on every installation)
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class Azurite:
    def __init__(self, workdir: Path) -> None:
        if not BINARY.exists():
            raise RuntimeError(f"Azurite is not installed at {BINARY}; run scripts/setup.sh (needs npm)")
        if shutil.which("node") is None:
            raise RuntimeError("Azurite needs node on PATH")
        self.port = free_port()
        self.log = (workdir / "azurite.log").open("wb")
        args = [str(BINARY), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--inMemoryPersistence"]
        args += ["--skipApiVersionCheck", "--loose", "--silent"]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Azurite exited with {self.proc.returncode}; see {self.log.name}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("Azurite did not start listening within 30 s")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def connection_string(self, key: str = KEY) -> str:
        return f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};BlobEndpoint={self.endpoint};"

    def stop(self) -> None:
        self.proc.kill()  # in-memory: nothing to flush, and a graceful stop takes Azurite ~10 s
        self.proc.wait()
        self.log.close()
