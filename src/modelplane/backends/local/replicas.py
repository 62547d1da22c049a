"""Local backend: replica processes per revision — start, probe readiness (model loaded), restart on crash, stop.

Each replica is a process on free loopback ports with its own log file; its pid and ports are recorded in a JSON
file under MODELPLANE_HOME so a restarted control plane re-adopts live replicas instead of starting new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from modelplane.backends.local.activator import Endpoint
from modelplane.backends.local.zygote import Zygote
from modelplane.control.revision import revision_name
from modelplane.proctitle import TITLE_ENV

if TYPE_CHECKING:
    from modelplane.backends.local.revision import Revisions, RevisionState

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
    """How to run one replica: argv with {http_port}/{grpc_port} placeholders, extra env. `forkable`: argv is
    `python -m modelplane serve ...`, which the zygote can fork (it runs argv[3:]) instead of a new process."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str = "/v2/health/ready"
    forkable: bool = False


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

    def mark_ready(self) -> None:
        self.ready, self.failure, self.ready_at, self.misses = True, "", time.monotonic(), 0
        self.probed = self.ready_at

    def probed_as(self, ok: bool) -> None:
        """Apply a readiness probe's answer. A ready replica is probed every PROBE_PERIOD_S, as kubelet does; after
        PROBE_FAILURES misses in a row it is not ready (it leaves the route) until a probe succeeds again."""
        if not self.ready:
            if ok:
                self.mark_ready()
            return
        self.probed = time.monotonic()
        if ok:
            self.misses = 0
            return
        self.misses += 1
        if self.misses < PROBE_FAILURES:
            return
        self.ready, self.misses = False, 0
        self.failure = f"readiness probe failed {PROBE_FAILURES} times in a row"
        log.warning("%s/%d is no longer ready: %s", self.revision, self.index, self.failure)


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
    """Starts, probes, restarts and stops the replica processes of every RevisionState in `revisions`, on the event
    loop: probes are async, a stop signals at once and waits in a worker thread, nothing here holds a lock."""

    def __init__(self, home: Path, revisions: Revisions, zygote: Zygote | None = None) -> None:
        self.home = home
        self.revisions = revisions
        self.zygote = zygote  # forks modelplane-server replicas from a warm, pre-imported process
        self.logs = home / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.state_file = home / "replicas.json"
        self.adopted: dict[str, tuple[ReplicaSpec | None, list[Replica]]] = {}  # live after a restart, unclaimed
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping: dict[asyncio.Future[None], Replica] = {}  # signalled, not yet exited (kubectl: Terminating)
        self._client: httpx.AsyncClient | None = None
        self._readiness: tuple[tuple[int, bool], ...] = ()
        self._adopt()

    # --- persistence ---------------------------------------------------------------------------------------
    def _adopt(self) -> None:
        try:
            saved = json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return
        found: dict[str, list[Replica]] = {}
        for item in saved.get("replicas", []):
            replica = Replica(**item)
            if _alive(replica.pid):
                replica.ready = False  # re-probed before it gets traffic
                found.setdefault(replica.revision, []).append(replica)
                log.info("re-adopted replica %s/%d (pid %d)", replica.revision, replica.index, replica.pid)
        for item in saved.get("terminating", []):  # asked to stop before the restart: finish the job
            if _alive(item["pid"]):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(item["pid"], signal.SIGKILL)
        specs = saved.get("specs", {})
        for key, replicas in found.items():
            self.adopted[key] = (ReplicaSpec(**specs[key]) if key in specs else None, replicas)

    def claim(self, state: RevisionState) -> None:
        """A revision the controller runs again after a restart takes over its re-adopted replicas."""
        spec, replicas = self.adopted.pop(state.key, (None, []))
        state.replicas.extend(replicas)
        state.spec = state.spec or spec

    def release_unclaimed(self, keep: set[str]) -> None:
        """Re-adopted replicas of revisions that no longer run are stopped."""
        for key in [k for k in self.adopted if k not in keep]:
            for replica in self.adopted.pop(key)[1]:
                self._stop(replica)
            self.save()

    def save(self) -> None:
        states = [(s.key, s.spec, s.replicas) for s in self.revisions]
        states += [(key, spec, replicas) for key, (spec, replicas) in self.adopted.items()]
        doc = {
            "replicas": [asdict(r) for _, _, rs in states for r in rs],
            "specs": {key: asdict(spec) for key, spec, rs in states if spec is not None and rs},
            "terminating": [asdict(r) for r in self._stopping.values()],
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(self.state_file)

    # --- lifecycle -----------------------------------------------------------------------------------------
    def _start(self, state: RevisionState, index: int, spec: ReplicaSpec, restarts: int = 0) -> Replica:
        http_port, grpc_port = free_port(), free_port()
        argv = [a.format(http_port=http_port, grpc_port=grpc_port) for a in spec.argv]
        overrides = {k: v.format(http_port=http_port, grpc_port=grpc_port) for k, v in spec.env.items()}
        log_path = self.logs / f"{state.key}-{index}.log"
        pid = None
        env = overrides
        if spec.forkable:
            title = f"modelplane replica {state.owner[0]}/{revision_name(state.key)}/{index}"
            if self.zygote is not None:  # reaped by the zygote, polled here; None while the zygote is not up
                pid = self.zygote.spawn(argv[3:], overrides, str(log_path), title)
            env = {**overrides, TITLE_ENV: title}
        if pid is None:
            workdir = None if spec.forkable else self.logs.parent / "work" / f"{state.key}-{index}"
            pid = self._popen(argv, env, log_path, workdir)
        replica = Replica(
            state.key, index, pid, http_port, grpc_port, str(log_path), restarts=restarts, started=time.monotonic()
        )
        log.info("started %s/%d pid %d on :%d", state.key, index, pid, http_port)
        return replica

    def _popen(self, argv: list[str], env: dict[str, str], log_path: Path, workdir: Path | None) -> int:
        """A replica as a child of this process: a runtime's own command in a working directory of its own, as in
        its container (TorchServe writes logs/ into it); a modelplane server where the platform runs (the zygote is
        off or not up yet)."""
        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                start_new_session=True,
                cwd=workdir,
            )
        self._children[proc.pid] = proc
        return proc.pid

    def _stop(self, replica: Replica) -> None:
        """SIGTERM now (the replica drains); waiting for it and the SIGKILL after 10 s happen in a worker thread."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(replica.pid, signal.SIGTERM)
        proc = self._children.pop(replica.pid, None)
        waiter = asyncio.get_running_loop().run_in_executor(None, _reap, replica.pid, proc)
        replica.ready = False
        self._stopping[waiter] = replica
        waiter.add_done_callback(self._stopped)

    def _stopped(self, waiter: asyncio.Future[None]) -> None:
        self._stopping.pop(waiter, None)
        self.save()

    def scale(self, state: RevisionState, count: int) -> None:
        """Start or stop processes until the revision runs `count` (starting needs its spec)."""
        current = state.replicas
        changed = False
        while len(current) > count:
            self._stop(current.pop())
            changed = True
        while len(current) < count and state.spec is not None:
            current.append(self._start(state, len(current), state.spec))
            changed = True
        if changed:
            self.save()

    async def stop_all(self) -> None:
        """Stop every replica: all are signalled first, then waited for together (a shutdown takes the longest
        replica's drain, not the sum)."""
        for state in self.revisions:
            while state.replicas:
                self._stop(state.replicas.pop())
        for _, replicas in self.adopted.values():
            for replica in replicas:
                self._stop(replica)
        self.adopted.clear()
        self.save()
        await asyncio.gather(*list(self._stopping), return_exceptions=True)

    async def tick(self) -> None:
        """Reap crashed replicas (restart with backoff, remember why) and probe readiness, all replicas at once."""
        changed = False
        probes: list[tuple[Replica, ReplicaSpec | None]] = []
        for state in self.revisions:
            for i, replica in enumerate(state.replicas):
                proc = self._children.get(replica.pid)
                dead = proc.poll() is not None if proc is not None else not _alive(replica.pid)
                if not dead:
                    due = not replica.ready or time.monotonic() - replica.probed >= PROBE_PERIOD_S
                    if due:
                        probes.append((replica, state.spec))
                    continue
                ended = _exit_reason(proc.returncode if proc is not None else None)
                why = f"replica {ended}: {_tail(replica.log_path)}"
                if time.monotonic() - replica.started > HEALTHY_S:
                    replica.restarts = 0  # it had been running fine: this is a new crash, not a crash loop
                delay = BACKOFF_S[min(replica.restarts, len(BACKOFF_S) - 1)]
                if time.monotonic() - replica.started < delay or state.spec is None:
                    replica.ready, replica.failure = False, why
                    continue  # wait out the backoff before restarting
                self._children.pop(replica.pid, None)
                log.warning("%s/%d died (%s); restarting", state.key, replica.index, why)
                fresh = self._start(state, replica.index, state.spec, replica.restarts + 1)
                fresh.failure = why
                state.replicas[i] = fresh
                changed = True
        if probes:
            answers = await asyncio.gather(*(self._probe(r, s) for r, s in probes))
            for (replica, _), ok in zip(probes, answers, strict=True):
                replica.probed_as(ok)
        readiness = tuple((r.pid, r.ready) for state in self.revisions for r in state.replicas)
        if changed or readiness != self._readiness:  # the state file shows readiness (get replicas)
            self._readiness = readiness
            self.save()

    async def _probe(self, replica: Replica, spec: ReplicaSpec | None) -> bool:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=0.5)
        try:
            r = await self._client.get(replica.url + (spec.ready_path if spec else "/v2/health/ready"))
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _reap(pid: int, proc: subprocess.Popen[bytes] | None) -> None:
    """Wait (in a worker thread) up to 10 s for a signalled replica to exit, then kill its process group."""
    if proc is not None:
        try:
            proc.wait(10)
            return
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            proc.wait(5)
        return
    deadline = time.monotonic() + 10  # adopted or forked by the zygote: not our child, poll until gone
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _exit_reason(code: int | None) -> str:
    """How a replica ended, in words (a zygote's or a re-adopted replica is not our child: no code to read)."""
    if code is None:
        return "process exited"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
