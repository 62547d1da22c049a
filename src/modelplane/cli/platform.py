"""CLI: the platform commands — up, down, apply, get, describe, delete, logs, predict (kubectl-like, talking to
the control-plane API of the platform running under MODELPLANE_HOME)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

ISVC_PATH = "/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices"
PATHS = {
    "InferenceService": ISVC_PATH,
    "ServingRuntime": "/apis/serving.kserve.io/v1alpha1/namespaces/{ns}/servingruntimes",
    "ClusterServingRuntime": "/apis/serving.kserve.io/v1alpha1/clusterservingruntimes",
}
Namespace = Annotated[str, typer.Option("--namespace", "-n")]


def _api() -> str:
    from modelplane.backends.local.platform import read_info

    if os.environ.get("MODELPLANE_API"):
        return os.environ["MODELPLANE_API"]
    info = read_info()
    if info is None:
        typer.echo("error: no platform is up for this MODELPLANE_HOME (run `modelplane up`)", err=True)
        raise typer.Exit(1)
    return str(info["api"])


def _headers() -> dict[str, str]:
    """The bearer token: $MODELPLANE_TOKEN, else the one `up` wrote to $MODELPLANE_HOME/token."""
    from modelplane.backends.local.auth import read_token
    from modelplane.control.store import home

    token = os.environ.get("MODELPLANE_TOKEN") or read_token(home())
    return {"authorization": f"Bearer {token}"} if token else {}


def _call(method: str, path: str, body: Any = None) -> Any:
    import httpx

    try:
        r = httpx.request(method, _api() + path, json=body, headers=_headers(), timeout=30)
    except httpx.TransportError as exc:
        typer.echo(f"error: the control plane does not answer: {exc}", err=True)
        raise typer.Exit(1) from exc
    doc = r.json()
    if r.status_code >= 400:
        typer.echo(f"Error from server ({doc.get('reason', r.status_code)}): {doc.get('message', doc)}", err=True)
        raise typer.Exit(1)
    return doc


def up(
    port: Annotated[int, typer.Option("--port", help="Gateway port")] = 8080,
    api_port: Annotated[int, typer.Option("--api-port", help="Control-plane API port")] = 8090,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="Gateway gRPC port")] = 8081,
    host: Annotated[str, typer.Option("--host", help="Gateway bind address (HTTP and gRPC)")] = "127.0.0.1",
    api_host: Annotated[
        str,
        typer.Option("--api-host", help="Control-plane API bind address (whoever reaches it with the token runs code)"),
    ] = "127.0.0.1",
    api_allowed_host: Annotated[
        list[str] | None, typer.Option("--api-allowed-host", help="Host header the API accepts besides loopback")
    ] = None,
    file_root: Annotated[
        list[Path] | None,
        typer.Option("--file-root", help="Directories local storageUris may name (default: $HOME and the home)"),
    ] = None,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", help="Gateway request body / gRPC message limit")
    ] = 64 * 2**20,
    max_connections: Annotated[
        int, typer.Option("--max-connections", help="Open connections per port before 503 (0: no cap)")
    ] = 1000,
    header_timeout: Annotated[
        float, typer.Option("--header-timeout", help="Seconds a client has to send a request's headers")
    ] = 10.0,
    domain: str = "example.com",
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background")] = False,
) -> None:
    """Start the control plane and the gateway (foreground, or in the background with --detach)."""
    import asyncio
    import logging

    from modelplane.backends.local.platform import PlatformConfig, read_info, serve
    from modelplane.control.store import home

    info = read_info()
    if info is not None and _pid_alive(int(info["pid"])):  # type: ignore[call-overload]
        typer.echo(f"already up (pid {info['pid']}): gateway {info['gateway']}, API {info['api']}")
        return
    if detach:
        root = home()
        root.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "modelplane",
            "up",
            "--port",
            str(port),
            "--api-port",
            str(api_port),
            "--grpc-port",
            str(grpc_port),
            "--host",
            host,
            "--api-host",
            api_host,
            "--domain",
            domain,
            "--max-body-bytes",
            str(max_body_bytes),
            "--max-connections",
            str(max_connections),
            "--header-timeout",
            str(header_timeout),
        ]
        argv += [a for h in api_allowed_host or [] for a in ("--api-allowed-host", h)]
        argv += [a for r in file_root or [] for a in ("--file-root", str(r))]
        with (root / "platform.log").open("ab") as out:
            subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = read_info()
            if info is not None and _healthy(str(info["api"])):
                typer.echo(f"modelplane is up: gateway {info['gateway']}, API {info['api']}, home {root}")
                return
            time.sleep(0.1)
        typer.echo(f"error: the platform did not start; see {root / 'platform.log'}", err=True)
        raise typer.Exit(1)
    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from modelplane.server.rest.guard import ConnectionLimits

    roots = file_root or [Path.home(), home()]
    os.environ["MODELPLANE_FILE_ROOTS"] = os.pathsep.join(str(r) for r in roots)  # read by the storage layer
    config = PlatformConfig(
        host=host,
        gateway_port=port,
        api_host=api_host,
        api_port=api_port,
        grpc_port=grpc_port,
        domain=domain,
        max_body_bytes=max_body_bytes,
        limits=ConnectionLimits(max_connections=max_connections, header_timeout_s=header_timeout),
        allowed_hosts=tuple(api_allowed_host or ()),
    )
    asyncio.run(serve(config))


def down() -> None:
    """Stop the platform and every replica it runs."""
    from modelplane.backends.local.platform import read_info

    info = read_info()
    if info is None or not _pid_alive(int(info["pid"])):  # type: ignore[call-overload]
        typer.echo("not up")
        return
    pid = int(info["pid"])  # type: ignore[call-overload]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    typer.echo("modelplane is down")


def apply(
    filename: Annotated[list[Path], typer.Option("--filename", "-f", help="YAML file or directory")],
    namespace: Namespace = "default",
) -> None:
    """Create or update the objects in FILE (or every .yaml/.yml/.json in DIR)."""
    import yaml

    files: list[Path] = []
    for f in filename:
        files += sorted(p for p in f.iterdir() if p.suffix in (".yaml", ".yml", ".json")) if f.is_dir() else [f]
    for path in files:
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        except (OSError, yaml.YAMLError) as exc:
            typer.echo(f"error: {path}: {exc}", err=True)
            raise typer.Exit(1) from exc
        for doc in docs:
            kind = doc.get("kind") if isinstance(doc, dict) else None
            if kind not in PATHS:
                typer.echo(f"error: {path}: unsupported kind {kind!r}", err=True)
                raise typer.Exit(1)
            _drop_server_fields(doc)
            ns = doc.setdefault("metadata", {}).get("namespace") or namespace
            out = _call("POST", PATHS[kind].format(ns=ns) + "?apply=true", doc)
            plural = {"InferenceService": "inferenceservice"}.get(kind, kind.lower())
            verb = "configured" if out["metadata"].get("generation", 1) > 1 else "created"
            typer.echo(f"{plural}.serving.kserve.io/{out['metadata']['name']} {verb}")


def _drop_server_fields(doc: dict[str, Any]) -> None:
    """What `get -o yaml` shows but the server owns (the API refuses them): applying saved output just works."""
    doc.pop("status", None)
    meta = doc.get("metadata")
    if isinstance(meta, dict):
        for key in ("uid", "creationTimestamp", "generation", "resourceVersion", "managedFields"):
            meta.pop(key, None)


def token(
    action: Annotated[str, typer.Argument(help="rotate | path")],
) -> None:
    """Rotate the control-plane API's bearer token (the old one stops working at once), or print its file."""
    from modelplane.backends.local.auth import rotate_token, token_path
    from modelplane.control.store import home

    if action == "rotate":
        rotate_token(home())
        typer.echo(f"new token written to {token_path(home())} (mode 0600); the old one no longer works")
    elif action == "path":
        typer.echo(str(token_path(home())))
    else:
        raise typer.BadParameter(f"unknown action {action!r}: rotate | path")


def _age(ts: str | None) -> str:
    if not ts:
        return ""
    seconds = int((datetime.now(UTC) - datetime.fromisoformat(ts.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _row(isvc: dict[str, Any]) -> list[str]:
    status = isvc.get("status") or {}
    ready = next((c["status"] for c in status.get("conditions", []) if c["type"] == "Ready"), "Unknown")
    predictor = (status.get("components") or {}).get("predictor", {})
    traffic = predictor.get("traffic", [])
    prev = next((str(t["percent"]) for t in traffic if t.get("tag") == "prev"), "")
    latest = next((str(t["percent"]) for t in traffic if t.get("latestRevision")), "")
    return [
        isvc["metadata"]["name"],
        status.get("url", ""),
        ready,
        prev,
        latest,
        predictor.get("previousRolledoutRevision", ""),
        predictor.get("latestReadyRevision", ""),
        _age(isvc["metadata"].get("creationTimestamp")),
    ]


def get(
    resource: Annotated[str, typer.Argument(help="isvc | inferenceservices | servingruntimes")],
    name: Annotated[str | None, typer.Argument()] = None,
    namespace: Namespace = "default",
    output: Annotated[str, typer.Option("--output", "-o", help="table | yaml | json")] = "table",
) -> None:
    """List or show objects, like `kubectl get`."""
    kind = _kind(resource)
    path = PATHS[kind].format(ns=namespace) + (f"/{name}" if name else "")
    doc = _call("GET", path)
    items = [doc] if name else doc["items"]
    if output in ("yaml", "json"):
        import yaml

        shown = doc if name else {"apiVersion": "v1", "kind": "List", "items": items}
        typer.echo(json.dumps(shown, indent=2) if output == "json" else yaml.safe_dump(shown, sort_keys=False))
        return
    if kind != "InferenceService":
        rows = [["NAME", "AGE"]] + [
            [i["metadata"]["name"], _age(i["metadata"].get("creationTimestamp"))] for i in items
        ]
    else:
        rows = [["NAME", "URL", "READY", "PREV", "LATEST", "PREVROLLEDOUTREVISION", "LATESTREADYREVISION", "AGE"]]
        rows += [_row(i) for i in items]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        typer.echo("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def describe(
    resource: Annotated[str, typer.Argument()], name: Annotated[str, typer.Argument()], namespace: Namespace = "default"
) -> None:
    """Show an object's spec and status (conditions, revisions, traffic, model status)."""
    import yaml

    doc = _call("GET", PATHS[_kind(resource)].format(ns=namespace) + f"/{name}")
    typer.echo(yaml.safe_dump(doc, sort_keys=False))


def delete(
    resource: Annotated[str, typer.Argument()], name: Annotated[str, typer.Argument()], namespace: Namespace = "default"
) -> None:
    """Delete an object (an InferenceService's replicas stop)."""
    kind = _kind(resource)
    _call("DELETE", PATHS[kind].format(ns=namespace) + f"/{name}")
    typer.echo(f'{kind.lower()}.serving.kserve.io "{name}" deleted')


def logs(
    name: Annotated[str, typer.Argument(help="InferenceService name")],
    component: Annotated[str, typer.Option("--component", "-c")] = "predictor",
    namespace: Namespace = "default",
    lines: Annotated[int, typer.Option("--tail")] = 50,
) -> None:
    """Print the last lines of each replica log of the component's latest revision."""
    from modelplane.control.store import home

    doc = _call("GET", ISVC_PATH.format(ns=namespace) + f"/{name}")
    revision = ((doc.get("status") or {}).get("components") or {}).get(component, {}).get("latestCreatedRevision")
    if not revision:
        typer.echo("no revision yet")
        return
    for path in sorted((home() / "logs").glob(f"{namespace}.{revision}.*-*.log")):
        typer.echo(f"==> {revision}-{path.name.rsplit('-', 1)[1]} <==")
        typer.echo("\n".join(path.read_text(errors="replace").splitlines()[-lines:]))


def predict(
    name: Annotated[str, typer.Argument(help="InferenceService name")],
    data: Annotated[str, typer.Option("--data", "-d", help="JSON body, or @file")],
    namespace: Namespace = "default",
    v2: Annotated[bool, typer.Option("--v2", help="POST to /v2/models/{name}/infer")] = False,
) -> None:
    """Send one request through the gateway and print the answer."""
    import httpx

    from modelplane.backends.local.platform import read_info

    body = Path(data[1:]).read_bytes() if data.startswith("@") else data.encode()
    info = read_info()
    gateway = str(info["gateway"]) if info else "http://127.0.0.1:8080"
    path = f"/v2/models/{name}/infer" if v2 else f"/v1/models/{name}:predict"
    r = httpx.post(
        f"{gateway}/serving/{namespace}/{name}{path}",
        content=body,
        headers={"content-type": "application/json"},
        timeout=60,
    )
    typer.echo(r.text)
    if r.status_code >= 400:
        raise typer.Exit(1)


def _kind(resource: str) -> str:
    names = {
        "isvc": "InferenceService",
        "inferenceservice": "InferenceService",
        "inferenceservices": "InferenceService",
        "servingruntime": "ServingRuntime",
        "servingruntimes": "ServingRuntime",
        "clusterservingruntime": "ClusterServingRuntime",
        "clusterservingruntimes": "ClusterServingRuntime",
    }
    if resource.lower() not in names:
        raise typer.BadParameter(f"unknown resource {resource!r}")
    return names[resource.lower()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _healthy(api: str) -> bool:
    import httpx

    try:
        return httpx.get(api + "/healthz", headers=_headers(), timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def register(app: typer.Typer) -> None:
    for fn in (up, down, apply, get, describe, delete, logs, predict, token):
        app.command()(fn)
