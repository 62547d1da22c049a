"""The operator's writer on the wire, against a small HTTP server on loopback standing in for the API server:
the REST paths and parameters of server-side apply, create, status and delete; the API server's Status message
in the error; a rotated service-account token file read again after a 401."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from modelplane.backends.kubernetes.client import ApiError, HttpWriter


class FakeApiServer:
    def __init__(self, token: str) -> None:
        self.token = token
        self.seen: list[tuple[str, str, dict[str, str], str, dict[str, Any] | None]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read()) if request.can_read_body else None
        self.seen.append((request.method, request.path, dict(request.query), request.content_type, body))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"kind": "Status", "message": "Unauthorized", "code": 401}, status=401)
        if request.path.endswith("/missing"):
            return web.json_response({"kind": "Status", "message": 'services "missing" not found'}, status=404)
        if request.path.endswith("/refused"):
            message = 'Service "refused" is invalid: spec.ports: Required value'
            return web.json_response({"kind": "Status", "message": message, "code": 422}, status=422)
        return web.json_response({**(body or {}), "metadata": {**((body or {}).get("metadata") or {}), "uid": "u1"}})


def kubeconfig(tmp_path: Path, port: int, token_file: Path) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"tokenFile": str(token_file)}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    return path


def test_writes_use_kubernetes_rest_paths_and_a_rotated_token_is_read_again(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    server = FakeApiServer("first")

    async def scenario() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", server.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        writer = HttpWriter(str(kubeconfig(tmp_path, port, token_file)))
        try:
            svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "iris", "namespace": "ml"}}
            assert (await writer.apply(svc))["metadata"]["uid"] == "u1"
            deployment = {
                "apiVersion": "apps/v1",
                "kind": "ControllerRevision",
                "metadata": {"name": "r1", "namespace": "ml"},
            }
            await writer.create(deployment)
            await writer.patch_status(
                "serving.kserve.io/v1beta1", "InferenceService", "ml", "iris", {"url": "http://x"}
            )
            await writer.delete("v1", "Service", "ml", "missing")  # already gone: not an error
            with pytest.raises(ApiError) as refused:
                await writer.apply({**svc, "metadata": {"name": "refused", "namespace": "ml"}})
            assert refused.value.status == 422 and "spec.ports: Required value" in str(refused.value)
            token_file.write_text("second\n")  # the kubelet rotates the service account's token
            server.token = "second"
            await writer.apply(svc)
        finally:
            await writer.close()
            await runner.cleanup()

    asyncio.run(scenario())
    apply_params = {"fieldManager": "modelplane", "force": "true"}
    ssa = "application/apply-patch+yaml"
    assert server.seen[0][:4] == ("PATCH", "/api/v1/namespaces/ml/services/iris", apply_params, ssa)
    assert server.seen[1][:3] == (
        "POST",
        "/apis/apps/v1/namespaces/ml/controllerrevisions",
        {"fieldManager": "modelplane"},
    )
    status = server.seen[2]
    assert status[:4] == (
        "PATCH",
        "/apis/serving.kserve.io/v1beta1/namespaces/ml/inferenceservices/iris/status",
        apply_params,
        ssa,
    )
    assert (
        status[4] is not None and status[4]["status"] == {"url": "http://x"} and status[4]["kind"] == "InferenceService"
    )
    assert server.seen[3][:2] == ("DELETE", "/api/v1/namespaces/ml/services/missing")
    # after the rotation: refused with the old token, then sent again with the new one
    assert [s[0] for s in server.seen[5:]] == ["PATCH", "PATCH"] and len(server.seen) == 7
