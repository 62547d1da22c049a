"""CLI: the Kubernetes commands — `render` (the objects an InferenceService becomes, for `kubectl apply`, with no
cluster and no operator) and `operator` (the kopf operator that makes them on a cluster)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from modelplane.cli.client import documents


def render(
    filename: Annotated[list[Path], typer.Option("--filename", "-f", help="YAML file, directory, or - (stdin)")],
    mode: Annotated[
        str | None, typer.Option("--mode", help="Standard | Knative (default: each isvc's deploymentMode annotation)")
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="yaml | json")] = "yaml",
    config: Annotated[
        Path | None,
        typer.Option("--config", help="KServe's inferenceservice-config ConfigMap (YAML) for ingress, images, …"),
    ] = None,
    gateway_api: Annotated[
        bool | None, typer.Option("--gateway-api/--ingress", help="HTTPRoutes instead of an Ingress (Standard)")
    ] = None,
    hpa_version: Annotated[str, typer.Option("--hpa-version", help="v2 | v2beta2 (Kubernetes < 1.23)")] = "v2",
) -> None:
    """Print the objects each InferenceService in FILE renders to (ServingRuntimes in FILE take part in runtime
    selection, after the built-in ClusterServingRuntimes)."""
    from dataclasses import replace

    from modelplane.backends.kubernetes.canary import new_tag_routes
    from modelplane.backends.kubernetes.config import ClusterConfig
    from modelplane.backends.kubernetes.render import RenderError, mode_of
    from modelplane.backends.kubernetes.render import render as render_objects
    from modelplane.control.api import InferenceService, ServingRuntime, parse
    from modelplane.control.runtimes import RuntimeResolutionError, with_builtins
    from modelplane.control.webhook import ValidationError

    if output not in ("yaml", "json"):
        raise typer.BadParameter(f"--output must be yaml or json, got {output!r}")
    if hpa_version not in ("v2", "v2beta2"):
        raise typer.BadParameter(f"--hpa-version must be v2 or v2beta2, got {hpa_version!r}")
    settings = _config(config) if config else ClusterConfig()
    settings = replace(settings, hpa_version=hpa_version)
    if gateway_api is not None:
        settings = replace(settings, ingress=replace(settings.ingress, enableGatewayApi=gateway_api))
    isvcs: list[tuple[str, InferenceService]] = []
    namespaced: list[ServingRuntime] = []
    cluster: list[ServingRuntime] = []
    for source, doc in documents(filename):
        try:
            obj = parse(doc)
        except ValueError as exc:
            _fail(f"{source}: {exc}")
        if isinstance(obj, InferenceService):
            isvcs.append((source, obj))
        elif obj.kind == "ClusterServingRuntime":
            cluster.append(obj)
        else:
            namespaced.append(obj)
    items: list[dict[str, Any]] = []
    for source, isvc in isvcs:
        try:
            objects = render_objects(isvc, settings, namespaced, with_builtins(cluster), mode)
            if (mode or mode_of(isvc, settings)) in ("Standard", "RawDeployment"):
                objects = new_tag_routes(objects, isvc, settings.ingress)
            items += objects
        except (ValidationError, RenderError) as exc:
            _fail(f"{source}: InferenceService {isvc.metadata.name}: {exc}")
        except RuntimeResolutionError as exc:
            _fail(f"{source}: InferenceService {isvc.metadata.name}: {exc.reason}: {exc.message}")
    if output == "json":
        sys.stdout.write(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2) + "\n")
    else:
        sys.stdout.write(_yaml(items))


def _config(path: Path) -> Any:
    import yaml

    from modelplane.backends.kubernetes.config import ClusterConfig

    try:
        doc = yaml.safe_load(path.read_text())
        return ClusterConfig.from_configmap((doc or {}).get("data") or {})
    except (OSError, ValueError, yaml.YAMLError, TypeError) as exc:
        _fail(f"{path}: {exc}")


def _yaml(items: list[dict[str, Any]]) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return yaml.dump_all(items, Dumper=Dumper, sort_keys=False, explicit_start=True)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def operator(
    kubeconfig: Annotated[
        str | None, typer.Option("--kubeconfig", help="Kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Watch one namespace (default: the whole cluster)")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="InferenceServices reconciled at once")] = 32,
    config_namespace: Annotated[
        str, typer.Option("--config-namespace", help="Where the inferenceservice-config ConfigMap lives")
    ] = "modelplane-system",
    webhook_port: Annotated[
        int, typer.Option("--webhook-port", help="Serve KServe's admission webhooks here (0: off)")
    ] = 0,
    webhook_host: Annotated[
        str, typer.Option("--webhook-host", help="The address the API server calls the webhooks at (and binds)")
    ] = "127.0.0.1",
    webhook_cert: Annotated[
        str | None, typer.Option("--webhook-cert", help="TLS certificate (default: self-signed for --webhook-host)")
    ] = None,
    webhook_key: Annotated[str | None, typer.Option("--webhook-key", help="TLS key for --webhook-cert")] = None,
) -> None:
    """Run the Kubernetes operator: InferenceServices, ServingRuntimes and ClusterServingRuntimes on a cluster
    become Deployments, Services, autoscalers and routes (Standard) or Knative Services (Knative), as KServe's
    controller makes them."""
    import logging

    from modelplane.backends.kubernetes.operator import Webhooks, run

    if workers < 1:
        raise typer.BadParameter("--workers must be >= 1")
    if (webhook_cert is None) != (webhook_key is None):
        raise typer.BadParameter("--webhook-cert and --webhook-key go together")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # not a line per watch event, webhook call or API request (kopf, aiohttp and httpx log those at INFO): at
    # 500 InferenceServices that was ~19 lines each, formatted and written on the operator's only busy thread
    for chatty in ("kopf.objects", "aiohttp.access", "httpx", "httpx2"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    if os.environ.get("MODELPLANE_OPERATOR_DEBUG"):
        logging.getLogger("modelplane").setLevel(logging.DEBUG)
    run(
        kubeconfig,
        namespace,
        workers,
        config_namespace,
        Webhooks(webhook_port, webhook_host, webhook_cert, webhook_key),
    )
