"""CLI: the kubectl-like commands — apply, get, describe, delete, logs, predict — over the control-plane API."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from modelplane.cli.client import (
    ISVC_PATH,
    PATHS,
    VALIDATION,
    Namespace,
    api_url,
    auth_headers,
    call,
    documents,
    kind_of,
)


def apply(
    filename: Annotated[list[Path], typer.Option("--filename", "-f", help="YAML file, directory, or - (stdin)")],
    namespace: Namespace = "default",
    validate: Annotated[
        str, typer.Option("--validate", help="Unknown fields: strict (refuse) | warn | ignore")
    ] = "strict",
) -> None:
    """Create or update the objects in FILE (every document; every .yaml/.yml/.json in DIR; - for stdin)."""
    if validate.lower() not in VALIDATION:
        raise typer.BadParameter(f"--validate must be strict, warn or ignore, got {validate!r}")
    for _, doc in documents(filename):
        kind = doc["kind"]
        _drop_server_fields(doc)
        ns = doc.setdefault("metadata", {}).get("namespace") or namespace
        answer: dict[str, str] = {}
        query = f"?apply=true&fieldValidation={VALIDATION[validate.lower()]}"
        out = call("POST", PATHS[kind].format(ns=ns) + query, doc, answer)
        plural = {"InferenceService": "inferenceservice"}.get(kind, kind.lower())
        typer.echo(f"{plural}.serving.kserve.io/{out['metadata']['name']} {answer.get('apply') or 'configured'}")


def _drop_server_fields(doc: dict[str, Any]) -> None:
    """What `get -o yaml` shows but the server owns (the API refuses them): applying saved output just works."""
    doc.pop("status", None)
    meta = doc.get("metadata")
    if isinstance(meta, dict):
        for key in ("uid", "creationTimestamp", "generation", "resourceVersion", "managedFields"):
            meta.pop(key, None)


def _age(ts: str | None) -> str:
    if not ts:
        return ""
    return _age_seconds(int((datetime.now(UTC) - datetime.fromisoformat(ts.replace("Z", "+00:00"))).total_seconds()))


def _age_seconds(seconds: int) -> str:
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
        next((t["revisionName"] for t in traffic if t.get("tag") == "prev"), ""),  # KServe's column: the `prev` tag
        predictor.get("latestReadyRevision", ""),
        _age(isvc["metadata"].get("creationTimestamp")),
    ]


OUTPUTS = ("table", "wide", "yaml", "json", "name")


def _ready(obj: dict[str, Any]) -> str:
    for c in (obj.get("status") or {}).get("conditions", []):
        if c.get("type") == "Ready":
            return str(c.get("status", "Unknown"))
    return "Unknown"


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        typer.echo("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _replicas() -> None:
    """The platform's replica processes (its pods): from the state file the replica supervisor keeps."""
    from modelplane.backends.local.store import home
    from modelplane.control.revision import revision_name

    try:
        doc = json.loads((home() / "replicas.json").read_text())
        saved = [(r, "Running") for r in doc["replicas"]] + [(r, "Terminating") for r in doc.get("terminating", [])]
    except (FileNotFoundError, ValueError, KeyError):
        saved = []
    rows = [["NAMESPACE", "REVISION", "INDEX", "PID", "HTTP", "GRPC", "READY", "STATUS", "RESTARTS", "AGE"]]
    for r, status in saved:
        age = int(time.monotonic() - r.get("started", time.monotonic()))
        rows.append(
            [
                r["revision"].split(".")[0] if r["revision"].count(".") == 2 else "",
                revision_name(r["revision"]),
                str(r["index"]),
                str(r["pid"]),
                str(r["http_port"]),
                str(r["grpc_port"]),
                "1/1" if r.get("ready") else "0/1",
                status,
                str(r.get("restarts", 0)),
                _age_seconds(age),
            ]
        )
    _table(rows)


def get(
    resource: Annotated[
        str,
        typer.Argument(
            help="isvc | servingruntimes | clusterservingruntimes | trainedmodels (tm) | revisions | replicas"
        ),
    ],
    name: Annotated[str | None, typer.Argument()] = None,
    namespace: Namespace = "default",
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Every namespace")] = False,
    output: Annotated[str, typer.Option("--output", "-o", help="table | wide | yaml | json | name")] = "table",
    watch: Annotated[bool, typer.Option("--watch", "-w", help="After listing, print changes as they happen")] = False,
) -> None:
    """List or show objects, like `kubectl get`."""
    if output not in OUTPUTS:
        raise typer.BadParameter(f"unknown output format {output!r}; use one of {', '.join(OUTPUTS)}")
    if resource.lower() in ("replicas", "replica", "pods", "pod"):
        _replicas()
        return
    kind = kind_of(resource)
    if watch and kind == "Revision":
        raise typer.BadParameter("revisions cannot be watched yet; watch the InferenceService")
    base = PATHS[kind].format(ns=namespace)
    if all_namespaces and "{ns}" in PATHS[kind]:
        base = PATHS[kind].replace("/namespaces/{ns}", "")
    doc = call("GET", base + (f"/{name}" if name else ""))
    items = [doc] if name else doc["items"]
    _show(kind, items, output, all_namespaces, doc if name else None)
    if watch:
        _watch(kind, base, name, output, all_namespaces, int(doc.get("metadata", {}).get("resourceVersion") or 0))


def _show(kind: str, items: list[dict[str, Any]], output: str, wide_ns: bool, single: dict | None = None) -> None:
    if output in ("yaml", "json"):
        import yaml

        shown = single if single is not None else {"apiVersion": "v1", "kind": "List", "items": items}
        typer.echo(json.dumps(shown, indent=2) if output == "json" else yaml.safe_dump(shown, sort_keys=False))
        return
    if output == "name":
        for i in items:
            typer.echo(f"{kind.lower()}.serving.kserve.io/{i['metadata']['name']}")
        return
    if kind == "Revision":
        rows = [["NAME", "INFERENCESERVICE", "COMPONENT", "TRAFFIC", "READY", "ACTUAL", "DESIRED", "AGE"]]
        rows += [
            [
                i["metadata"]["name"],
                i["metadata"]["labels"]["serving.kserve.io/inferenceservice"],
                i["metadata"]["labels"]["component"],
                f"{i['status']['traffic']}%",
                str(i["status"]["readyReplicas"]),
                str(i["status"]["actualReplicas"]),
                str(i["status"]["desiredReplicas"]),
                _age(i["metadata"].get("creationTimestamp")),
            ]
            for i in items
        ]
    elif kind == "TrainedModel":  # KServe's printer columns
        rows = [["NAME", "URL", "READY", "AGE"]] + [
            [
                i["metadata"]["name"],
                (i.get("status") or {}).get("url", ""),
                _ready(i),
                _age(i["metadata"].get("creationTimestamp")),
            ]
            for i in items
        ]
    elif kind != "InferenceService":
        rows = [["NAME", "AGE"]] + [
            [i["metadata"]["name"], _age(i["metadata"].get("creationTimestamp"))] for i in items
        ]
    else:
        rows = [["NAME", "URL", "READY", "PREV", "LATEST", "PREVROLLEDOUTREVISION", "LATESTREADYREVISION", "AGE"]]
        rows += [_row(i) for i in items]
    if wide_ns:
        rows = [["NAMESPACE", *rows[0]]] + [
            [i["metadata"].get("namespace", ""), *r] for i, r in zip(items, rows[1:], strict=True)
        ]
    _table(rows)


def _watch(kind: str, base: str, name: str | None, output: str, wide_ns: bool, since: int) -> None:
    """Stream the API's watch (JSON lines) and print each change of the listed objects until interrupted."""
    import httpx

    try:
        with httpx.stream(
            "GET", f"{api_url()}{base}?watch=true&resourceVersion={since}", headers=auth_headers(), timeout=None
        ) as r:
            for line in r.iter_lines():
                event = json.loads(line)
                obj = event["object"]
                if name and obj["metadata"].get("name") != name:
                    continue
                if event["type"] == "DELETED":
                    typer.echo(f"{obj['metadata'].get('name')} deleted")
                    continue
                _show(kind, [obj], output if output != "table" else "table", wide_ns)
    except KeyboardInterrupt:
        return
    except httpx.TransportError as exc:
        typer.echo(f"error: the watch ended: {exc}", err=True)
        raise typer.Exit(1) from None


def describe(
    resource: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Argument()],
    namespace: Namespace = "default",
    output: Annotated[str, typer.Option("--output", "-o", help="yaml | json")] = "yaml",
) -> None:
    """Show an object's spec and status (conditions, revisions, traffic, model status)."""
    import yaml

    if output not in ("yaml", "json"):
        raise typer.BadParameter(f"unknown output format {output!r}; use yaml or json")
    doc = call("GET", PATHS[kind_of(resource)].format(ns=namespace) + f"/{name}")
    typer.echo(json.dumps(doc, indent=2) if output == "json" else yaml.safe_dump(doc, sort_keys=False))


def delete(
    resource: Annotated[str | None, typer.Argument()] = None,
    name: Annotated[str | None, typer.Argument()] = None,
    namespace: Namespace = "default",
    filename: Annotated[
        list[Path] | None, typer.Option("--filename", "-f", help="Delete the objects in these files")
    ] = None,
) -> None:
    """Delete an object (an InferenceService's replicas stop), or every object in -f FILE."""
    if filename:
        targets = [
            (doc["kind"], doc.get("metadata", {}).get("namespace") or namespace, doc.get("metadata", {}).get("name"))
            for _, doc in documents(filename)
        ]
    elif resource and name:
        targets = [(kind_of(resource), namespace, name)]
    else:
        raise typer.BadParameter("give RESOURCE NAME, or -f FILE")
    for kind, ns, obj in targets:
        call("DELETE", PATHS[kind].format(ns=ns) + f"/{obj}")
        typer.echo(f'{kind.lower()}.serving.kserve.io "{obj}" deleted')


def logs(
    name: Annotated[str, typer.Argument(help="InferenceService name")],
    component: Annotated[str, typer.Option("--component", "-c")] = "predictor",
    namespace: Namespace = "default",
    lines: Annotated[int, typer.Option("--tail")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines")] = False,
) -> None:
    """Print the last lines of each replica log of the component's latest revision."""
    from modelplane.backends.local.store import home

    doc = call("GET", ISVC_PATH.format(ns=namespace) + f"/{name}")
    if component not in ("predictor", "transformer", "explainer") or (
        component != "predictor" and not (doc.get("spec") or {}).get(component)
    ):
        typer.echo(f"error: InferenceService {namespace}/{name} has no {component}", err=True)
        raise typer.Exit(1)
    revision = ((doc.get("status") or {}).get("components") or {}).get(component, {}).get("latestCreatedRevision")
    if not revision:
        typer.echo("no revision yet")
        return
    paths = sorted((home() / "logs").glob(f"{namespace}.{revision}.*-*.log"))
    offsets = {}
    for path in paths:
        typer.echo(f"==> {revision}-{path.name.rsplit('-', 1)[1]} <==")
        text = path.read_bytes()
        typer.echo("\n".join(text.decode(errors="replace").splitlines()[-lines:]))
        offsets[path] = len(text)
    while follow:
        try:
            time.sleep(0.5)
        except KeyboardInterrupt:
            return
        for path in paths:
            with path.open("rb") as fh:
                fh.seek(offsets[path])
                new = fh.read()
            if new:
                offsets[path] += len(new)
                typer.echo(new.decode(errors="replace"), nl=False)


def predict(
    name: Annotated[str, typer.Argument(help="InferenceService name")],
    data: Annotated[str, typer.Option("--data", "-d", help="JSON body, or @file")],
    namespace: Namespace = "default",
    v2: Annotated[bool, typer.Option("--v2", help="POST to /v2/models/{name}/infer")] = False,
) -> None:
    """Send one request through the gateway and print the answer."""
    import httpx

    from modelplane.backends.local.platform import read_info

    try:
        body = Path(data[1:]).read_bytes() if data.startswith("@") else data.encode()
    except OSError as exc:
        typer.echo(f"error: cannot read {data[1:]}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
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
