"""Kubernetes backend: the admission webhooks — KServe's defaulting (mutating) and validation (validating) for
InferenceService and validation for ServingRuntime, ClusterServingRuntime and TrainedModel, the same functions
the local API server runs, so `kubectl apply` of an invalid object is refused by the API server with KServe's
message. kopf serves them and keeps the webhook configurations."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelplane.control import trainedmodel as tmctl
from modelplane.control.api import InferenceService, ServingRuntime, TrainedModel
from modelplane.control.runtime_webhook import runtimes_beside, validate_runtime
from modelplane.control.webhook import ValidationError, default, validate

WEBHOOK_CONFIGURATION = "inferenceservice.serving.kserve.io"


def defaulted_patch(doc: dict[str, Any], default_mode: str) -> dict[str, Any]:
    """A JSON merge patch taking `doc` to its defaulted form (None removes a field: a legacy framework field
    becomes `model:`)."""
    isvc = InferenceService.model_validate(doc)
    after = default(isvc.model_copy(deep=True), default_mode).dump()
    before = InferenceService.model_validate(doc).dump()
    patch: dict[str, Any] = {}
    for section in ("metadata", "spec"):
        diff = merge_diff(before.get(section) or {}, after.get(section) or {})
        if diff:
            patch[section] = diff
    return patch


def merge_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        out[key] = None
    for key, value in new.items():
        if key not in old:
            out[key] = value
        elif isinstance(value, dict) and isinstance(old[key], dict):
            inner = merge_diff(old[key], value)
            if inner:
                out[key] = inner
        elif value != old[key]:
            out[key] = value
    return out


def refusal(doc: dict[str, Any], old: dict[str, Any] | None, default_mode: str) -> str | None:
    """KServe's message when the object is refused, else None."""

    def check() -> None:
        isvc = default(InferenceService.model_validate(doc), default_mode)
        before = default(InferenceService.model_validate(old), default_mode) if old else None
        validate(isvc, before)

    return _refused(check)


def _refused(check: Callable[[], None]) -> str | None:
    """The reason `check` refuses the object: KServe's message, or the first schema error with its field path."""
    from pydantic import ValidationError as SchemaError

    try:
        check()
    except ValidationError as exc:
        return str(exc)
    except SchemaError as exc:
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return None


def self_signed(directory: Path, host: str) -> tuple[Path, Path]:
    """A certificate for the webhook server on `host` (an IP or a DNS name), signed by itself: its own CA bundle."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    certfile, keyfile = directory / "webhook.crt", directory / "webhook.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.touch(mode=0o600)
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certfile, keyfile


def runtime_refusal(doc: dict[str, Any], stored: list[dict[str, Any]]) -> str | None:
    """KServe's message when a ServingRuntime or ClusterServingRuntime is refused beside the `stored` ones of its
    kind (and namespace), else None."""

    def check() -> None:
        runtime = ServingRuntime.model_validate(doc)
        validate_runtime(runtime, runtimes_beside(runtime, stored))

    return _refused(check)


def trained_model_refusal(doc: dict[str, Any], old: dict[str, Any] | None) -> str | None:
    """KServe's TrainedModel webhook: its message when the TrainedModel (created, or updated from `old`) is refused."""

    def check() -> None:
        tmctl.validate(TrainedModel.model_validate(doc), TrainedModel.model_validate(old) if old else None)

    return _refused(check)


def register(registry: Any, default_mode: str, stored: Callable[[str, str | None], list[dict[str, Any]]]) -> None:
    """The kopf handlers: defaulting, then validation, for InferenceService creates and updates; validation for
    ServingRuntimes and ClusterServingRuntimes against the `stored(kind, namespace)` ones (the watch cache)."""
    import kopf

    for plural, kind in (("servingruntimes", "ServingRuntime"), ("clusterservingruntimes", "ClusterServingRuntime")):

        async def check_runtime(body: Any, kind: str = kind, **_: Any) -> None:
            doc = _plain(body)
            namespace = (doc.get("metadata") or {}).get("namespace") or None
            message = runtime_refusal(doc, stored(kind, namespace if kind == "ServingRuntime" else None))
            if message is not None:
                raise kopf.AdmissionError(message, code=422)

        kopf.on.validate(
            "serving.kserve.io", "v1alpha1", plural, id=f"validate-{plural}", registry=registry,
            operations=["CREATE", "UPDATE"],
        )(check_runtime)  # fmt: skip

    @kopf.on.validate(
        "serving.kserve.io", "v1alpha1", "trainedmodels", id="validate-trainedmodels", registry=registry,
        operations=["CREATE", "UPDATE"],
    )  # fmt: skip
    async def check_trained(body: Any, old: Any, **_: Any) -> None:
        message = trained_model_refusal(_plain(body), _plain(old) if old else None)
        if message is not None:
            raise kopf.AdmissionError(message, code=422)

    @kopf.on.mutate(
        "serving.kserve.io", "v1beta1", "inferenceservices", id="default", registry=registry,
        operations=["CREATE", "UPDATE"],
    )  # fmt: skip
    async def mutate(body: Any, patch: Any, **_: Any) -> None:  # async: on the loop, no thread hop
        try:
            patch.update(defaulted_patch(_plain(body), default_mode))
        except Exception:  # an object that cannot be parsed is refused by validation, with the reason
            return

    @kopf.on.validate(
        "serving.kserve.io", "v1beta1", "inferenceservices", id="validate", registry=registry,
        operations=["CREATE", "UPDATE"],
    )  # fmt: skip
    async def check(body: Any, old: Any, **_: Any) -> None:
        message = refusal(_plain(body), _plain(old) if old else None, default_mode)
        if message is not None:
            raise kopf.AdmissionError(message, code=422)


def _plain(body: Any) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(body, default=dict))
