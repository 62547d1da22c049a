"""Local backend: how a revision runs as a process — pull its model through the storage layer, then build the
replica's command line and environment (modelplane's own server, or a runtime's command, KServe's arguments)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shlex
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from modelplane.backends.local.replicas import ReplicaSpec
from modelplane.backends.local.revision import READY_PATH, Pull, RevisionState
from modelplane.backends.local.store import Store
from modelplane.backends.server_flags import server_flags
from modelplane.control import trainedmodel as tmctl
from modelplane.control.api import InferenceService

log = logging.getLogger("modelplane.controller")
MODEL_MOUNT = "/mnt/models"
PORT_FLAGS = ("--http_port", "--http-port", "--grpc_port", "--grpc-port")
# a runtime's args name the container port 8080 (KServe's default): as the whole argument, a flag's value or a
# host:port; the replica's own port goes there (and nowhere else, e.g. not inside a path that holds "8080")
_PORT_ARG = re.compile(r"^(|--?[\w.-]+=|.*:)8080$")


def _strip_port_flags(args: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in PORT_FLAGS:
            skip = True
            continue
        if a.split("=", 1)[0] in PORT_FLAGS:
            continue
        out.append(a)
    return out


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


class Launcher:
    """Pulls a revision's model in a worker thread (never on the event loop, never under a lock) and builds how its
    replicas run. Results land on the RevisionState; a failed pull is retried with backoff, its error in status."""

    def __init__(self, store: Store, gateway_url: str, gateway_grpc: str) -> None:
        self.store = store
        self.repository: Callable[[str, str], Path] | None = None  # where a multi-model predictor's models are
        self.gateway_url = gateway_url
        self.gateway_grpc = gateway_grpc

    def _pulled(self, state: RevisionState) -> tuple[bool, Path | None]:
        """(done, model directory): done with None when the revision has no storageUri; not done while the pull
        runs or waits to be retried (a pull is started here when none is running)."""
        uri = state.revision.template.get("storageUri")
        if not uri:
            return True, None
        pull = state.pull
        if pull.model_dir is not None:
            return True, pull.model_dir
        if pull.task is None and time.monotonic() >= pull.retry_at:
            pull.task = _in_thread(partial(_download, uri, state.revision.namespace), f"pull {state.key}")
            pull.task.add_done_callback(partial(_pull_done, pull, uri))
        return False, None

    def spec(self, state: RevisionState) -> ReplicaSpec | None:
        """How the revision's replicas run, or None while its model is being pulled (or the pull failed)."""
        if state.spec is not None:
            return state.spec
        done, model_dir = self._pulled(state)
        if not done:
            return None
        isvc, revision = state.isvc, state.revision
        t: dict[str, Any] = revision.template
        mms = revision.component == "predictor" and self.repository is not None and tmctl.is_mms(isvc)
        if mms and model_dir is None and self.repository is not None:  # its models come from TrainedModels
            model_dir = self.repository(isvc.metadata.namespace, isvc.metadata.name)
            model_dir.mkdir(parents=True, exist_ok=True)
        mount = str(model_dir) if model_dir else MODEL_MOUNT

        def local(text: str) -> str:
            return _escape(text.replace(MODEL_MOUNT, mount))

        args = [local(a) for a in t.get("args") or []]
        if mms and not any(a.startswith("--model-cache-bytes") for a in args):
            args.append(tmctl.cache_flag(isvc))
        # an env value naming the container port 8080 (a host:port, a URL, the bare number) gets the replica's port,
        # as args do: runtimes such as TorchServe take their addresses from the environment
        env = {k: _PORT_ARG.sub(r"\g<1>{http_port}", local(v)) for k, v in (t.get("env") or {}).items()}
        env.update(
            {
                "PORT": "{http_port}",
                "HTTP_PORT": "{http_port}",
                "GRPC_PORT": "{grpc_port}",
                "INFERENCE_SERVICE_NAME": isvc.metadata.name,
                "MLSERVER_HTTP_PORT": "{http_port}",
                "MLSERVER_GRPC_PORT": "{grpc_port}",
                "MLSERVER_METRICS_PORT": "0",
            }
        )
        if revision.component in ("transformer", "explainer"):  # as KServe does: where the predictor is, and how
            protocol = next((a.split("=", 1)[1] for a in args if a.startswith("--predictor_protocol=")), None)
            if protocol is None and "--predictor_protocol" in args[:-1]:
                protocol = args[args.index("--predictor_protocol") + 1]
            if protocol is None:
                protocol = self._predictor_protocol(isvc)
                args.append(f"--predictor_protocol={protocol}")
            if not any(a.startswith("--predictor_host") for a in args):
                host = self.gateway_grpc if protocol.startswith("grpc") else self.gateway_url.removeprefix("http://")
                args.append(f"--predictor_host={host}/serving/{isvc.metadata.namespace}/{isvc.metadata.name}-predictor")
            if not any(a.startswith("--model_name") for a in args):
                args.append(f"--model_name={isvc.metadata.name}")
        command = t.get("command")
        forkable = not command
        if command:
            command = [sys.executable if i == 0 and c in ("python", "python3") else c for i, c in enumerate(command)]
            argv = [local(c) for c in command] + [_PORT_ARG.sub(r"\g<1>{http_port}", a) for a in args]
            log.info("revision %s runs %s", revision.name, shlex.join(command))
        else:
            argv = [sys.executable, "-m", "modelplane", "serve", *_strip_port_flags(args)]
            argv += ["--http_port", "{http_port}", "--grpc_port", "{grpc_port}", "--host", "127.0.0.1"]
            argv += [_escape(a) for a in server_flags(isvc, revision.component, t)]
        # the runtime container's readinessProbe.httpGet.path is where its readiness is asked, as kubelet would
        ready = str(t.get("readinessPath") or READY_PATH)
        state.spec = ReplicaSpec(argv=argv, env=env, forkable=forkable, ready_path=ready)
        return state.spec

    def _predictor_protocol(self, isvc: InferenceService) -> str:
        revs = self.store.revisions(isvc.metadata.namespace, isvc.metadata.name, "predictor")
        protocol = str(revs[-1].template.get("protocol") or "v1") if revs else "v1"
        return "v2" if protocol.endswith("v2") else "v1"


PULL_RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # wait before pulling again after consecutive failures


def _download(uri: str, namespace: str) -> Path:
    from modelplane.storage import download

    return download(uri, scope=namespace)


def _in_thread(work: Callable[[], Path], name: str) -> asyncio.Future[Path]:
    """Run `work` in its own daemon thread; the future settles on the event loop. A daemon thread, not an
    executor: a pull that hangs (a storage server that stops answering) must not hold up the platform's exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Path] = loop.create_future()

    def settle(result: Path | None, exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, exc = work(), None
        except BaseException as err:  # reported on the loop; a thread has nobody else to tell
            result, exc = None, err
        with contextlib.suppress(RuntimeError):  # the loop closed while this pull ran: nobody is waiting
            loop.call_soon_threadsafe(settle, result, exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def _pull_done(pull: Pull, uri: str, task: asyncio.Future[Path]) -> None:
    """On the event loop when a pull ends: its directory, or why it failed (for the status) and when to retry."""
    pull.task = None
    if task.cancelled():
        return
    exc = task.exception()
    if exc is None:
        pull.model_dir, pull.error, pull.failures = task.result(), "", 0
        return
    pull.error = f"{type(exc).__name__}: {exc}"  # reaches the status (modelStatus.lastFailureInfo)
    pull.retry_at = time.monotonic() + PULL_RETRY_S[min(pull.failures, len(PULL_RETRY_S) - 1)]
    pull.failures += 1
    log.warning("pulling %s failed (attempt %d): %s", uri, pull.failures, pull.error)
