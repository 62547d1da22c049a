"""Local backend: the handle on the warm zygote process (`modelplane.cli.zygote`) — started once per platform,
restarted if it died; `spawn` asks it over its UNIX socket to fork a `modelplane serve` replica.

Protocol: one JSON line per connection, {"argv": [...], "env": {...}, "log": path}; the answer is {"pid": N}.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


class Zygote:
    """The platform's handle on its zygote process (started once, restarted if it died)."""

    def __init__(self, home: Path) -> None:
        self.path = str(home / "zygote.sock")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "logs" / "zygote.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # held by the thread starting the zygote
        self._up = False  # it answered the start's probe

    def start(self) -> None:
        """Start the zygote now, in the background (its imports take seconds: better before the first replica).
        A no-op while a start is under way."""
        if not self._lock.locked():
            threading.Thread(target=self._ensure, name="zygote-start", daemon=True).start()

    def _ensure(self) -> None:
        with self._lock:
            self._start()

    def _start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return  # up, or a start that timed out: replicas then start as processes of their own
        self._up = False
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "modelplane.cli.zygote", self.path, str(os.getpid())],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if os.path.exists(self.path) and self.proc.poll() is None:
                with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as probe:
                    probe.connect(self.path)
                    probe.sendall(b'{"probe": true}\n')
                    if probe.makefile("rb").readline():
                        self._up = True
                        return
            time.sleep(0.05)
        raise RuntimeError(f"the zygote did not start; see {self.log}")

    def spawn(self, argv: list[str], env: dict[str, str], log: str, title: str = "") -> int | None:
        """Fork a replica running `modelplane ARGV` (process title `title`); returns its pid. None when the zygote
        is not up — still importing, or dead and now restarting in the background: the caller, on the platform's
        event loop, then starts the replica as a process of its own instead of waiting seconds for the zygote (the
        API and the gateway would stall meanwhile)."""
        proc = self.proc
        if not self._up or proc is None or proc.poll() is not None:
            self.start()
            return None
        conn = socket.socket(socket.AF_UNIX)
        try:
            conn.connect(self.path)
        except OSError:  # gone between the check and now: nothing was asked of it
            conn.close()
            self._up = False
            self.start()
            return None
        with conn:
            conn.sendall(json.dumps({"argv": argv, "env": env, "log": log, "title": title}).encode() + b"\n")
            return int(json.loads(conn.makefile("rb").readline())["pid"])

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
