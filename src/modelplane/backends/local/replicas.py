"""Local backend: replica processes per revision — start, probe readiness (model loaded), restart on crash, stop.

Each replica is a process on free loopback ports with its own log file; its pid and ports are recorded in a JSON
file under MODELPLANE_HOME so a restarted control plane re-adopts live replicas instead of starting new ones.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from modelplane.backends.local.activator import Endpoint
from modelplane.backends.local.zygote import Zygote
from modelplane.control.store import revision_name

log = logging.getLogger("modelplane.replicas")
BACKOFF_S = (0, 1, 2, 5, 10)  # wait before restarting a replica that crashed again soon after its restart
HEALTHY_S = 10.0  # a replica that ran this long before dying is restarted at once
PROBE_PERIOD_S = 2.0  # a ready replica is probed again this often (kubelet: periodSeconds)
PROBE_FAILURES = 3  # misses in a row before it is taken out of the route (kubelet: failureThreshold)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ReplicaSpec:
    """How to run one replica: argv with {http_port}/{grpc_port} placeholders, extra env."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str = "/v2/health/ready"


@dataclass
class Replica:
    revision: str
    index: int
    pid: int
    http_port: int
    grpc_port: int
    log_path: str
    ready: bool = False
    restarts: int = 0
    started: float = 0.0
    failure: str = ""
    ready_at: float = 0.0  # monotonic time its readiness was first seen
    probed: float = 0.0  # monotonic time of the last readiness probe while ready
    misses: int = 0  # consecutive failed probes while ready (kubelet's failureThreshold)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.url, f"127.0.0.1:{self.grpc_port}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False


def _tail(path: str, lines: int = 5) -> str:
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    return " | ".join(text[-lines:])[-600:]


class ReplicaSet:
    """All replicas this backend runs, by revision."""

    def __init__(self, home: Path, zygote: Zygote | None = None) -> None:
        self.home = home
        self.zygote = zygote  # forks modelplane-server replicas from a warm, pre-imported process
        self.logs = home / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.state_file = home / "replicas.json"
        self.replicas: dict[str, list[Replica]] = {}
        self.specs: dict[str, ReplicaSpec] = {}
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._client = httpx.Client(timeout=0.5)
        self._adopt()

    # --- persistence ---------------------------------------------------------------------------------------
    def _adopt(self) -> None:
        try:
            saved = json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return
        for item in saved.get("replicas", []):
            replica = Replica(**item)
            if _alive(replica.pid):
                replica.ready = False  # re-probed before it gets traffic
                self.replicas.setdefault(replica.revision, []).append(replica)
                log.info("re-adopted replica %s/%d (pid %d)", replica.revision, replica.index, replica.pid)
        for revision, spec in saved.get("specs", {}).items():
            if revision in self.replicas:
                self.specs[revision] = ReplicaSpec(**spec)

    def _save(self) -> None:
        doc = {
            "replicas": [asdict(r) for rs in self.replicas.values() for r in rs],
            "specs": {k: asdict(v) for k, v in self.specs.items()},
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(self.state_file)

    # --- lifecycle -----------------------------------------------------------------------------------------
    def _start(self, revision: str, index: int, spec: ReplicaSpec, restarts: int = 0) -> Replica:
        http_port, grpc_port = free_port(), free_port()
        argv = [a.format(http_port=http_port, grpc_port=grpc_port) for a in spec.argv]
        overrides = {k: v.format(http_port=http_port, grpc_port=grpc_port) for k, v in spec.env.items()}
        log_path = self.logs / f"{revision}-{index}.log"
        if self.zygote is not None and argv[:4] == [sys.executable, "-m", "modelplane", "serve"]:
            title = f"modelplane replica {revision.split('.')[0]}/{revision_name(revision)}/{index}"
            pid = self.zygote.spawn(argv[3:], overrides, str(log_path), title)  # reaped by the zygote, polled here
        else:
            with log_path.open("ab") as out:
                proc = subprocess.Popen(
                    argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **overrides}, start_new_session=True
                )
            self._children[proc.pid] = proc
            pid = proc.pid
        replica = Replica(
            revision, index, pid, http_port, grpc_port, str(log_path), restarts=restarts, started=time.monotonic()
        )
        log.info("started %s/%d pid %d on :%d", revision, index, pid, http_port)
        return replica

    def _stop(self, replica: Replica) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(replica.pid, signal.SIGTERM)
        proc = self._children.pop(replica.pid, None)
        if proc is not None:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(replica.pid, signal.SIGKILL)
                proc.wait(5)
        else:  # adopted: not our child, poll until gone
            deadline = time.monotonic() + 10
            while _alive(replica.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(replica.pid, signal.SIGKILL)

    def scale(self, revision: str, count: int, spec: ReplicaSpec | None) -> None:
        current = self.replicas.setdefault(revision, [])
        if spec is not None:
            self.specs[revision] = spec
        while len(current) > count:
            self._stop(current.pop())
        spec = self.specs.get(revision)
        while len(current) < count and spec is not None:
            current.append(self._start(revision, len(current), spec))
        if not current:
            self.replicas.pop(revision, None)
            self.specs.pop(revision, None)
        self._save()

    def stop_all(self) -> None:
        """Stop every replica: all are signalled first, then waited for together (a shutdown takes the longest
        replica's drain, not the sum)."""
        everyone = [r for rs in self.replicas.values() for r in rs]
        for replica in everyone:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(replica.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for replica in everyone:
            proc = self._children.pop(replica.pid, None)
            while (proc.poll() is None if proc else _alive(replica.pid)) and time.monotonic() < deadline:
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(replica.pid, signal.SIGKILL)
            if proc is not None:
                proc.wait()
        self.replicas.clear()
        self.specs.clear()
        self._save()

    def tick(self) -> None:
        """Reap crashed replicas (restart with backoff, remember why) and probe readiness."""
        changed = False
        for revision, replicas in self.replicas.items():
            for i, replica in enumerate(replicas):
                proc = self._children.get(replica.pid)
                dead = proc.poll() is not None if proc is not None else not _alive(replica.pid)
                if dead:
                    ended = _exit_reason(proc.returncode if proc is not None else None)
                    why = f"replica {ended}: {_tail(replica.log_path)}"
                    self._children.pop(replica.pid, None)
                    if time.monotonic() - replica.started > HEALTHY_S:
                        replica.restarts = 0  # it had been running fine: this is a new crash, not a crash loop
                    delay = BACKOFF_S[min(replica.restarts, len(BACKOFF_S) - 1)]
                    if time.monotonic() - replica.started < delay:
                        replica.ready, replica.failure = False, why
                        continue  # wait out the backoff before restarting
                    log.warning("%s/%d died (%s); restarting", revision, replica.index, why)
                    fresh = self._start(revision, replica.index, self.specs[revision], replica.restarts + 1)
                    fresh.failure = why
                    replicas[i] = fresh
                    changed = True
                    continue
                if not replica.ready and self._probe(replica) and not replica.ready:
                    replica.ready, replica.failure, replica.ready_at = True, "", time.monotonic()
                elif replica.ready and time.monotonic() - replica.probed >= PROBE_PERIOD_S:
                    changed |= self._reprobe(revision, replica)
        if changed:
            self._save()

    def _reprobe(self, revision: str, replica: Replica) -> bool:
        """A ready replica is probed again every PROBE_PERIOD_S, as kubelet does; after PROBE_FAILURES misses in a
        row it is not ready (it leaves the route) until a probe succeeds again. True when that changed."""
        replica.probed = time.monotonic()
        if self._probe(replica):
            replica.misses = 0
            return False
        replica.misses += 1
        if replica.misses < PROBE_FAILURES:
            return False
        replica.ready, replica.misses = False, 0
        replica.failure = f"readiness probe failed {PROBE_FAILURES} times in a row"
        log.warning("%s/%d is no longer ready: %s", revision, replica.index, replica.failure)
        return True

    def _probe(self, replica: Replica) -> bool:
        spec = self.specs.get(replica.revision)
        try:
            r = self._client.get(replica.url + (spec.ready_path if spec else "/v2/health/ready"))
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    # --- the data path's view (ReplicaView), read from the event loop ------------------------------------------
    def ready(self, revision: str) -> list[Endpoint]:
        return [r.endpoint for r in self.replicas.get(revision, []) if r.ready]

    def starting(self, revision: str) -> list[tuple[Endpoint, str]]:
        spec = self.specs.get(revision)
        path = spec.ready_path if spec else "/v2/health/ready"
        return [(r.endpoint, path) for r in self.replicas.get(revision, []) if not r.ready]

    def mark_ready(self, revision: str, endpoint: Endpoint) -> None:
        for r in self.replicas.get(revision, []):
            if r.endpoint == endpoint and not r.ready:
                r.ready, r.failure, r.ready_at = True, "", time.monotonic()

    def count(self, revision: str) -> tuple[int, int]:
        """(replicas, ready replicas)."""
        rs = self.replicas.get(revision, [])
        return len(rs), sum(1 for r in rs if r.ready)

    def failure(self, revision: str) -> str:
        return next((r.failure for r in self.replicas.get(revision, []) if r.failure), "")

    def close(self) -> None:
        self._client.close()


def _exit_reason(code: int | None) -> str:
    """How a replica ended, in words (a zygote's or a re-adopted replica is not our child: no code to read)."""
    if code is None:
        return "process exited"
    if code < 0:
        import signal

        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
