"""Local backend: who may call the control-plane API — a bearer token kept in MODELPLANE_HOME (mode 0600, made at
`up`, rotatable), and the checks that keep browsers out (no Origin, JSON/YAML bodies only, a known Host)."""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

TOKEN_FILE = "token"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
BODY_TYPES = frozenset({"application/json", "application/yaml", "application/x-yaml", "text/yaml"})


class ApiError(Exception):
    """A refusal of the control-plane API (the guard's, or a handler's): HTTP status, reason, message, and the
    Kubernetes `Status` object it is answered with."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def body(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def token_path(root: Path) -> Path:
    return root / TOKEN_FILE


def _write(path: Path, token: str) -> None:
    """Write the token to a new 0600 file, then rename it over `path` (readers never see half a token)."""
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        staging.unlink()
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.replace(staging, path)


def ensure_token(root: Path) -> str:
    """The platform's token, created on first use; a token file others can read is made private again."""
    root.mkdir(parents=True, exist_ok=True)
    path = token_path(root)
    try:
        info = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        token = secrets.token_urlsafe(32)
        _write(path, token)
        return token
    if info.st_mode & 0o077:
        os.chmod(path, 0o600)
    return read_token(root) or rotate_token(root)


def rotate_token(root: Path) -> str:
    """A new token; the running platform accepts only the new one from its next request on."""
    root.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    _write(token_path(root), token)
    return token


def read_token(root: Path) -> str | None:
    try:
        return token_path(root).read_text().strip() or None
    except FileNotFoundError:
        return None


class TokenFile:
    """The current token, re-read when the file changes (so `modelplane token rotate` takes effect at once)."""

    def __init__(self, root: Path) -> None:
        self.path = token_path(root)
        self._stamp: tuple[int, int] | None = None
        self._token: bytes = b""

    def current(self) -> bytes:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return b""  # no token file: nobody gets in
        stamp = (info.st_ino, info.st_mtime_ns)
        if stamp != self._stamp:
            self._token = self.path.read_bytes().strip()
            self._stamp = stamp
        return self._token


class ApiGuard:
    """Decides, from the headers alone, whether a request may reach the API."""

    def __init__(self, token: TokenFile, hosts: frozenset[str]) -> None:
        self.token = token
        self.hosts = LOOPBACK_HOSTS | {h.lower() for h in hosts}

    def check(self, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> None:
        found: dict[bytes, bytes] = {}
        for key, value in headers:
            if key in (b"origin", b"host", b"authorization", b"content-type") and key not in found:
                found[key] = value
        if b"origin" in found:
            raise ApiError(403, "Forbidden", "requests from a browser (with an Origin header) are refused")
        host = _hostname(found.get(b"host", b"").decode("latin-1"))
        if host not in self.hosts:
            raise ApiError(
                421, "Misdirected", f"Host {host!r} is not this API's (add it with `modelplane up --api-allowed-host`)"
            )
        if path == "/healthz":
            return
        sent = found.get(b"authorization", b"")
        expected = self.token.current()
        if not expected or not hmac.compare_digest(sent, b"Bearer " + expected):
            raise ApiError(
                401, "Unauthorized", "a bearer token is required: the CLI reads it from $MODELPLANE_HOME/token"
            )
        if method in ("POST", "PUT", "PATCH"):
            ctype = found.get(b"content-type", b"").split(b";")[0].strip().lower().decode("latin-1")
            if ctype not in BODY_TYPES:
                raise ApiError(
                    415, "UnsupportedMediaType", f"content type {ctype or 'none'!r}: send application/json or YAML"
                )


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
