"""CLI: the control-plane API client the kubectl-like commands share — where the API is, its token, one call
(errors, warnings, the check that the API is this home's platform), and reading manifests."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

ISVC_PATH = "/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices"
PATHS = {
    "InferenceService": ISVC_PATH,
    "ServingRuntime": "/apis/serving.kserve.io/v1alpha1/namespaces/{ns}/servingruntimes",
    "ClusterServingRuntime": "/apis/serving.kserve.io/v1alpha1/clusterservingruntimes",
    "Revision": "/apis/serving.kserve.io/v1beta1/namespaces/{ns}/revisions",
    "TrainedModel": "/apis/serving.kserve.io/v1alpha1/namespaces/{ns}/trainedmodels",
}
Namespace = Annotated[str, typer.Option("--namespace", "-n")]


def api_url() -> str:
    from modelplane.backends.local.platform import read_info

    if os.environ.get("MODELPLANE_API"):
        return os.environ["MODELPLANE_API"]
    info = read_info()
    if info is None:
        typer.echo("error: no platform is up for this MODELPLANE_HOME (run `modelplane up`)", err=True)
        raise typer.Exit(1)
    return str(info["api"])


def auth_headers() -> dict[str, str]:
    """The bearer token: $MODELPLANE_TOKEN, else the one `up` wrote to $MODELPLANE_HOME/token."""
    from modelplane.backends.local.auth import read_token
    from modelplane.backends.local.store import home

    token = os.environ.get("MODELPLANE_TOKEN") or read_token(home())
    return {"authorization": f"Bearer {token}"} if token else {}


def call(method: str, path: str, body: Any = None, answer: dict[str, str] | None = None) -> Any:
    """One API call; prints the server's warnings (as kubectl does) and puts its apply result into `answer`."""
    import httpx

    try:
        r = httpx.request(method, api_url() + path, json=body, headers=auth_headers(), timeout=30)
    except httpx.TransportError as exc:
        typer.echo(f"error: the control plane does not answer: {exc}", err=True)
        raise typer.Exit(1) from exc
    _check_instance(r.headers.get("x-modelplane-instance"))
    for warning in r.headers.get_list("warning"):
        typer.echo("Warning: " + warning.removeprefix('299 - "').removesuffix('"'), err=True)
    if answer is not None:
        answer["apply"] = r.headers.get("x-modelplane-apply", "")
    try:
        doc = r.json()
    except ValueError:
        typer.echo(f"error: the control plane answered {r.status_code} with no JSON: {r.text[:200]}", err=True)
        raise typer.Exit(1) from None
    if r.status_code >= 400:
        typer.echo(f"Error from server ({doc.get('reason', r.status_code)}): {doc.get('message', doc)}", err=True)
        raise typer.Exit(1)
    return doc


def _check_instance(answered: str | None) -> None:
    """The API must be this home's platform (another one on the same port would take our objects)."""
    from modelplane.backends.local.platform import read_info
    from modelplane.backends.local.store import home

    if os.environ.get("MODELPLANE_API"):
        return
    info = read_info() or {}
    if info.get("instance") and answered != info["instance"]:
        typer.echo(
            f"error: the API at {info.get('api')} belongs to another platform, not the one of {home()}; "
            "is another modelplane using that port? (`modelplane down`, or `up --api-port` to use another)",
            err=True,
        )
        raise typer.Exit(1)


def kind_of(resource: str) -> str:
    names = {
        "isvc": "InferenceService",
        "inferenceservice": "InferenceService",
        "inferenceservices": "InferenceService",
        "servingruntime": "ServingRuntime",
        "servingruntimes": "ServingRuntime",
        "clusterservingruntime": "ClusterServingRuntime",
        "clusterservingruntimes": "ClusterServingRuntime",
        "revision": "Revision",
        "revisions": "Revision",
        "rev": "Revision",
        "tm": "TrainedModel",
        "trainedmodel": "TrainedModel",
        "trainedmodels": "TrainedModel",
    }
    if resource.lower() not in names:
        raise typer.BadParameter(f"unknown resource {resource!r}")
    return names[resource.lower()]


def pid_alive(pid: int) -> bool:
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


def healthy(api: str, instance: object = None) -> bool:
    """The API answers — and, given `instance`, it is that platform (not another one on the same port)."""
    import httpx

    try:
        r = httpx.get(api + "/healthz", headers=auth_headers(), timeout=0.5)
        return r.status_code == 200 and (instance is None or r.json().get("instance") == instance)
    except (httpx.HTTPError, ValueError):
        return False


VALIDATION = {"strict": "Strict", "warn": "Warn", "ignore": "Ignore"}


def documents(filename: list[Path]) -> list[tuple[str, dict[str, Any]]]:
    """(source, object) for every document in FILEs, DIRs (.yaml/.yml/.json) and `-` (standard input)."""
    import yaml

    sources: list[tuple[str, str]] = []
    for f in filename:
        try:
            if str(f) == "-":
                sources.append(("<stdin>", sys.stdin.read()))
            elif f.is_dir():
                sources += [
                    (str(p), p.read_text()) for p in sorted(f.iterdir()) if p.suffix in (".yaml", ".yml", ".json")
                ]
            else:
                sources.append((str(f), f.read_text()))
        except OSError as exc:
            typer.echo(f"error: {f}: {exc.strerror or exc}", err=True)
            raise typer.Exit(1) from None
    out = []
    for source, text in sources:
        try:
            docs = [d for d in yaml.safe_load_all(text) if d]
        except yaml.YAMLError as exc:
            typer.echo(f"error: {source}: {exc}", err=True)
            raise typer.Exit(1) from None
        for doc in docs:
            kind = doc.get("kind") if isinstance(doc, dict) else None
            if kind not in PATHS:
                typer.echo(f"error: {source}: unsupported kind {kind!r}", err=True)
                raise typer.Exit(1)
            out.append((source, doc))
    return out
