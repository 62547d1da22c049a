"""Local backend: how a revision runs as a process — pull its model through the storage layer, then build the
replica's command line and environment (modelplane's own server, or a runtime's command, KServe's arguments)."""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from modelplane.backends.local.gateway import REPOSITORY_ANNOTATION
from modelplane.backends.local.replicas import ReplicaSpec
from modelplane.control.api import InferenceService
from modelplane.control.store import Revision, Store

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


class Launcher:
    def __init__(self, store: Store, gateway_url: str, gateway_grpc: str) -> None:
        self.store = store
        self.gateway_url = gateway_url
        self.gateway_grpc = gateway_grpc
        self.pull_errors: dict[str, str] = {}  # revision -> why its model could not be pulled
        self.model_dirs: dict[str, Path] = {}
        self.specs: dict[str, ReplicaSpec] = {}  # how each revision runs, kept while it is at zero
        self.sources: dict[str, tuple[InferenceService, Revision]] = {}  # what spec() needs, kept by the controller

    def forget(self, revision: str) -> None:
        self.specs.pop(revision, None)
        self.sources.pop(revision, None)
        self.model_dirs.pop(revision, None)
        self.pull_errors.pop(revision, None)

    def model_dir(self, revision: Revision) -> Path | None:
        uri = revision.template.get("storageUri")
        if not uri:
            return None
        if revision.key not in self.model_dirs:
            from modelplane.storage import download

            try:
                self.model_dirs[revision.key] = download(uri, scope=revision.namespace)
                self.pull_errors.pop(revision.key, None)
            except Exception as exc:  # whatever went wrong reaches the status (modelStatus.lastFailureInfo)
                self.pull_errors[revision.key] = f"{type(exc).__name__}: {exc}"
                raise
        return self.model_dirs[revision.key]

    def spec(self, isvc: InferenceService, revision: Revision) -> ReplicaSpec | None:
        t: dict[str, Any] = revision.template
        if revision.key in self.specs:
            return self.specs[revision.key]
        try:
            model_dir = self.model_dir(revision)
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
        self.specs[revision.key] = ReplicaSpec(argv=argv, env=env)
        return self.specs[revision.key]

    def _predictor_protocol(self, isvc: InferenceService) -> str:
        revs = self.store.revisions(isvc.metadata.namespace, isvc.metadata.name, "predictor")
        protocol = str(revs[-1].template.get("protocol") or "v1") if revs else "v1"
        return "v2" if protocol.endswith("v2") else "v1"

    @staticmethod
    def _server_flags(isvc: InferenceService, revision: Revision) -> list[str]:
        t = revision.template
        flags: list[str] = []
        if isvc.metadata.annotations.get(REPOSITORY_ANNOTATION) != "true":
            flags += ["--model-control-mode", "none"]  # the model it was started for, and nothing else
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
