"""Storage: the model puller — KServe's agent `--enable-puller` role beside a multi-model server. It follows a
model list (`models.json` in a watched directory: a ConfigMap volume, `[{"modelName", "modelSpec": {storageUri,
framework, memory}}]`), downloads each model into `<model-dir>/<name>` under a `SUCCESS.<spec hash>` marker, swaps a
changed one in, removes a dropped one, and tells the server (V2 repository load / unload). Also the fetch the local
platform's TrainedModels use."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("modelplane.puller")
MARKER = "SUCCESS."  # + the spec's hash, as KServe's agent marks a finished download
CONFIG_FILE = "models.json"
NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")  # the TrainedModel webhook's names: one path segment, never `..`
MAX_CONFIG_BYTES = 16 * 2**20


def spec_digest(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def fetch_model(uri: str, dest: Path, digest: str, scope: str = "") -> bool:
    """Download `uri` into a fresh directory beside `dest`, mark it, then swap it in; whether it replaced an older
    copy. Raises what the download raises (the staging directory is removed)."""
    from modelplane.storage import download

    staging = dest.with_name(f".{dest.name}.{digest}")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        download(uri, staging, scope=scope)
        (staging / f"{MARKER}{digest}").write_text(digest)
        replaced = dest.exists()
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
        return replaced
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def read_models(config_dir: Path) -> dict[str, dict[str, Any]] | None:
    """The model list (name -> modelSpec), or None when the file cannot be read as one (kept as it was: a
    ConfigMap volume is swapped under the reader). Entries with an unsafe name or no storageUri are skipped."""
    path = config_dir / CONFIG_FILE
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            log.warning("%s is larger than %d bytes: ignored", path, MAX_CONFIG_BYTES)
            return None
        entries = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None
    if not isinstance(entries, list):
        log.warning("%s is not a list of models: ignored", path)
        return None
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        name = entry.get("modelName") if isinstance(entry, dict) else None
        spec = entry.get("modelSpec") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not NAME_RE.match(name):
            log.warning("model entry %r: the name must match %s; skipped", name, NAME_RE.pattern)
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("storageUri"), str):
            log.warning("model %s: no modelSpec.storageUri; skipped", name)
            continue
        out[name] = spec
    return out


class Puller:
    """One `step()` per interval: the list is compared with what is on disk (its markers), downloads run in
    threads, one per model at a time; the server is told what changed (`notify(name, "load"|"unload")`, which
    returns whether the server took it; a load is asked again until it does)."""

    def __init__(self, config_dir: Path, model_dir: Path, notify: Callable[[str, str], bool]) -> None:
        self.config_dir = config_dir
        self.model_dir = model_dir
        self.notify = notify
        self.have: dict[str, str] = self._scan()  # name -> digest of the files in place
        self._pulls: dict[str, threading.Thread] = {}
        self._failed: dict[str, str] = {}  # name -> digest whose download failed (tried again when it changes)
        self._unloaded: set[str] = set()  # loads the server has not taken yet
        self._lock = threading.Lock()  # `have` and `_unloaded` are written by download threads

    def _scan(self) -> dict[str, str]:
        """Models pulled before a restart (their markers), so they are not downloaded again."""
        found: dict[str, str] = {}
        if self.model_dir.is_dir():
            for d in self.model_dir.iterdir():
                markers = [p.name for p in d.glob(f"{MARKER}*")] if d.is_dir() and NAME_RE.match(d.name) else []
                if markers:
                    found[d.name] = markers[0].removeprefix(MARKER)
        return found

    def step(self) -> None:
        wanted = read_models(self.config_dir)
        if wanted is None:
            return
        for name, spec in wanted.items():
            digest = spec_digest(spec)
            busy = name in self._pulls and self._pulls[name].is_alive()
            if busy or self.have.get(name) == digest or self._failed.get(name) == digest:
                continue
            thread = threading.Thread(target=self._pull, args=(name, spec, digest), daemon=True)
            self._pulls[name] = thread
            thread.start()
        for name in [n for n in self.have if n not in wanted and not self._busy(n)]:
            shutil.rmtree(self.model_dir / name, ignore_errors=True)
            with self._lock:
                del self.have[name]
                self._unloaded.discard(name)
            self.notify(name, "unload")
            log.info("model %s removed", name)
        with self._lock:
            pending = list(self._unloaded)
        for name in pending:
            if self.notify(name, "load"):
                with self._lock:
                    self._unloaded.discard(name)

    def _busy(self, name: str) -> bool:
        thread = self._pulls.get(name)
        return thread is not None and thread.is_alive()

    def _pull(self, name: str, spec: dict[str, Any], digest: str) -> None:
        uri = spec["storageUri"]
        try:
            fetch_model(uri, self.model_dir / name, digest)
        except Exception as exc:  # logged, as KServe's agent does; tried again when the spec changes
            self._failed[name] = digest
            log.warning("pulling model %s from %s failed: %s: %s", name, uri, type(exc).__name__, exc)
            return
        with self._lock:
            self.have[name] = digest
            self._unloaded.add(name)
        self._failed.pop(name, None)
        log.info("model %s pulled from %s", name, uri)

    def run(self, interval_s: float, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # keep following the list
                log.exception("puller step failed")
            stop.wait(interval_s)


def server_notifier(server: str, timeout_s: float = 90.0) -> Callable[[str, str], bool]:
    """`notify` over the server's V2 repository API: True when it answered (a load the model refuses is logged and
    not asked again; only an unreachable server is)."""
    import httpx

    client = httpx.Client(base_url=server.rstrip("/"), timeout=timeout_s)

    def notify(name: str, action: str) -> bool:
        try:
            reply = client.post(f"/v2/repository/models/{name}/{action}", json={})
        except httpx.HTTPError as exc:
            log.info("%s of %s: the server is not reachable yet (%s)", action, name, exc)
            return False
        if reply.status_code >= 400:
            log.warning("%s of %s answered %d: %s", action, name, reply.status_code, reply.text[:300])
        return True

    return notify


def main(config_dir: str, model_dir: str, server: str, interval_s: float = 1.0) -> None:
    root = Path(model_dir)
    root.mkdir(parents=True, exist_ok=True)
    puller = Puller(Path(config_dir), root, server_notifier(server))
    log.info("puller: %s -> %s, server %s, %d model(s) on disk", config_dir, model_dir, server, len(puller.have))
    stop = threading.Event()
    try:
        puller.run(interval_s, stop)
    except KeyboardInterrupt:
        stop.set()
