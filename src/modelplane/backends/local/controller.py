"""Local backend: the controller loop — store → pure reconciler → replica processes, gateway routes, status."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from modelplane.backends.local.gateway import Gateway, Route
from modelplane.backends.local.replicas import ReplicaSet, ReplicaSpec
from modelplane.control.api import InferenceService, ServingRuntime
from modelplane.control.reconciler import Observed, reconcile, template_hash, templates
from modelplane.control.runtimes import RuntimeResolutionError, builtin_runtimes
from modelplane.control.store import Revision, Store, now

log = logging.getLogger("modelplane.controller")
MODEL_MOUNT = "/mnt/models"
PORT_FLAGS = ("--http_port", "--http-port", "--grpc_port", "--grpc-port")


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


class Controller:
    def __init__(
        self, store: Store, replicas: ReplicaSet, gateway: Gateway, gateway_url: str, gateway_grpc: str = ""
    ) -> None:
        self.gateway_grpc = gateway_grpc
        self.store = store
        self.replicas = replicas
        self.gateway = gateway
        self.gateway_url = gateway_url
        self.pull_errors: dict[str, str] = {}
        self.model_dirs: dict[str, Path] = {}
        self._stop = asyncio.Event()

    async def run(self, interval_s: float = 0.25) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self.step)
            except Exception:  # keep the control loop alive; the next step retries
                log.exception("reconcile failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval_s)

    def stop(self) -> None:
        self._stop.set()

    # --- one pass --------------------------------------------------------------------------------------------
    def step(self) -> None:
        self.replicas.tick()
        namespaced = [ServingRuntime.model_validate(d) for d in self.store.list("ServingRuntime")]
        cluster = builtin_runtimes() + [
            ServingRuntime.model_validate(d) for d in self.store.list("ClusterServingRuntime")
        ]
        live: set[str] = set()
        routed: set[tuple[str, str]] = set()
        for doc in self.store.list("InferenceService"):
            isvc = InferenceService.model_validate(doc)
            routed.add((isvc.metadata.namespace, isvc.metadata.name))
            live.update(self._reconcile(isvc, namespaced, cluster))
        for key in list(self.gateway.routes):  # stop routing before stopping processes
            if key not in routed:
                self.gateway.set_route(*key, None)
        for revision in list(self.replicas.replicas):
            if revision not in live:
                self.replicas.scale(revision, 0, None)

    def _reconcile(
        self, isvc: InferenceService, namespaced: list[ServingRuntime], cluster: list[ServingRuntime]
    ) -> set[str]:
        meta = isvc.metadata
        error: RuntimeResolutionError | None = None
        try:
            wanted = templates(isvc, namespaced, cluster)
        except RuntimeResolutionError as exc:
            wanted, error = {}, exc
        revisions: dict[str, list[Revision]] = {}
        for component, template in wanted.items():
            existing = self.store.revisions(meta.namespace, meta.name, component)
            digest = template_hash(template)
            if not existing or existing[-1].template_hash != digest:
                self.store.add_revision(meta.namespace, meta.name, component, digest, template)
                existing = self.store.revisions(meta.namespace, meta.name, component)
            revisions[component] = existing
        observed = {
            rev.name: Observed(
                ready=len(self.replicas.ready_urls(rev.name)),
                failure=self.pull_errors.get(rev.name) or self.replicas.failure(rev.name),
            )
            for revs in revisions.values()
            for rev in revs
        }
        desired = reconcile(
            isvc,
            revisions,
            observed,
            now=now(),
            gateway_url=self.gateway_url,
            domain=self.gateway.domain,
            resolution_error=error,
        )
        # route first: traffic only names ready revisions, so a revision is out of the route before it stops
        route = Route(
            traffic={
                c: [(t["revisionName"], int(t.get("percent", 0))) for t in ts] for c, ts in desired.traffic.items()
            },
            tags={t["tag"]: t["revisionName"] for ts in desired.traffic.values() for t in ts if t.get("tag")},
            timeouts={c: float(w["timeout"]) for c, w in wanted.items() if w.get("timeout")},
        )
        self.gateway.set_route(meta.namespace, meta.name, route)
        for revs in revisions.values():
            for rev in revs:
                count = desired.replicas.get(rev.name, 0)
                have = len(self.replicas.replicas.get(rev.name, []))
                if count == have:
                    continue
                spec = self._spec(isvc, rev) if count else None
                if count and spec is None:
                    continue  # the model could not be pulled; the failure is in the status
                self.replicas.scale(rev.name, count, spec)
        self.store.set_status("InferenceService", meta.namespace, meta.name, desired.status)
        return {rev.name for revs in revisions.values() for rev in revs}

    # --- how a revision runs -------------------------------------------------------------------------------
    def _model_dir(self, revision: Revision) -> Path | None:
        uri = revision.template.get("storageUri")
        if not uri:
            return None
        if revision.name not in self.model_dirs:
            from modelplane.storage import StorageError, download

            try:
                self.model_dirs[revision.name] = download(uri)
                self.pull_errors.pop(revision.name, None)
            except (StorageError, OSError) as exc:
                self.pull_errors[revision.name] = f"{type(exc).__name__}: {exc}"
                raise
        return self.model_dirs[revision.name]

    def _spec(self, isvc: InferenceService, revision: Revision) -> ReplicaSpec | None:
        t: dict[str, Any] = revision.template
        try:
            model_dir = self._model_dir(revision)
        except Exception:
            return None
        mount = str(model_dir) if model_dir else MODEL_MOUNT

        def local(text: str) -> str:
            return _escape(text.replace(MODEL_MOUNT, mount))

        args = [local(a) for a in t.get("args") or []]
        env = {k: local(v) for k, v in (t.get("env") or {}).items()}
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
        if command:
            command = [sys.executable if i == 0 and c in ("python", "python3") else c for i, c in enumerate(command)]
            argv = [local(c) for c in command] + [a.replace("8080", "{http_port}") for a in args]
            log.info("revision %s runs %s", revision.name, shlex.join(command))
        else:
            argv = [sys.executable, "-m", "modelplane", "serve", *_strip_port_flags(args)]
            argv += ["--http_port", "{http_port}", "--grpc_port", "{grpc_port}", "--host", "127.0.0.1"]
            argv += self._server_flags(isvc, revision)
        return ReplicaSpec(argv=argv, env=env)

    def _predictor_protocol(self, isvc: InferenceService) -> str:
        revs = self.store.revisions(isvc.metadata.namespace, isvc.metadata.name, "predictor")
        protocol = str(revs[-1].template.get("protocol") or "v1") if revs else "v1"
        return "v2" if protocol.endswith("v2") else "v1"

    @staticmethod
    def _server_flags(isvc: InferenceService, revision: Revision) -> list[str]:
        t = revision.template
        flags: list[str] = []
        logger, batcher = t.get("logger"), t.get("batcher")
        if logger and logger.get("url"):
            flags += ["--log-url", _escape(logger["url"]), "--log-mode", logger.get("mode", "all")]
            flags += ["--inference-service", isvc.metadata.name, "--namespace", isvc.metadata.namespace]
            flags += ["--component", revision.component]
            if logger.get("metadataHeaders"):
                flags += ["--metadata-headers", ",".join(logger["metadataHeaders"])]
        if batcher is not None:
            flags += ["--enable-batcher", "--max-batch-size", str(batcher.get("maxBatchSize") or 32)]
            flags += ["--max-latency", str(batcher.get("maxLatency") or 5000)]
            if batcher.get("timeout"):
                flags += ["--batch-timeout", str(batcher["timeout"])]
        return flags
