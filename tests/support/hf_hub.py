"""Test support: a real HTTP server on loopback speaking the slice of the Hugging Face Hub API that downloads use.

Model info (`/api/models/{repo}/revision/{rev}`), the recursive tree listing and `/{repo}/resolve/{rev}/{path}`
(HEAD and GET), with the headers huggingface_hub reads (X-Repo-Commit, ETag, Content-Length). Repos are versioned:
every `publish` makes a new commit that `main` points to. A repo with a token answers 401 to anyone without it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> files
    refs: dict[str, str] = field(default_factory=dict)  # branch -> sha
    token: str | None = None


class Hub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.downloads: dict[str, int] = {}  # path -> GETs of its content
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._handle(self, body=False)

            def do_GET(self) -> None:
                hub._handle(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def publish(self, repo_id: str, files: dict[str, bytes], token: str | None = None, branch: str = "main") -> str:
        repo = self.repos.setdefault(repo_id, Repo(token=token))
        sha = hashlib.sha1(repr((repo_id, len(repo.commits), sorted(files))).encode()).hexdigest()
        repo.commits[sha] = dict(files)
        repo.refs[branch] = sha
        return sha

    # -- request handling ------------------------------------------------------------------------------------

    def _reply(
        self, h: BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict[str, str], body: bool
    ) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        if body:
            h.wfile.write(payload)

    def _error(self, h: BaseHTTPRequestHandler, status: int, code: str, message: str, body: bool) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._reply(h, status, json.dumps({"error": message}).encode(), headers, body)

    def _find(
        self, h: BaseHTTPRequestHandler, repo_id: str, rev: str, body: bool
    ) -> tuple[str, dict[str, bytes]] | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            self._error(h, 404, "RepoNotFound", "Repository not found", body)
            return None
        if repo.token is not None and h.headers.get("Authorization") != f"Bearer {repo.token}":
            self._error(h, 401, "", "Invalid credentials in Authorization header", body)
            return None
        sha = repo.refs.get(rev, rev)
        if sha not in repo.commits:
            self._error(h, 404, "RevisionNotFound", "Invalid rev id", body)
            return None
        return sha, repo.commits[sha]

    def _handle(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        parts = [unquote(p) for p in urlparse(h.path).path.strip("/").split("/")]
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
            repo_id, kind, rev, sub = f"{parts[2]}/{parts[3]}", parts[4], parts[5], "/".join(parts[6:])
            found = self._find(h, repo_id, rev, body)
            if found is None:
                return
            sha, files = found
            if kind == "revision":
                info = {
                    "id": repo_id,
                    "modelId": repo_id,
                    "sha": sha,
                    "private": False,
                    "siblings": [{"rfilename": p} for p in sorted(files)],
                }
                payload = json.dumps(info).encode()
            else:
                entries = [
                    {"type": "file", "oid": hashlib.sha1(d).hexdigest(), "size": len(d), "path": p}
                    for p, d in sorted(files.items())
                    if p.startswith(sub)
                ]
                payload = json.dumps(entries).encode()
            self._reply(h, 200, payload, {"Content-Type": "application/json"}, body)
            return
        if len(parts) >= 5 and parts[2] == "resolve":
            repo_id, rev, path = f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:])
            found = self._find(h, repo_id, rev, body)
            if found is None:
                return
            sha, files = found
            if path not in files:
                self._error(h, 404, "EntryNotFound", "Entry not found", body)
                return
            data = files[path]
            headers = {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
            if body:
                self.downloads[path] = self.downloads.get(path, 0) + 1
            self._reply(h, 200, data, headers, body)
            return
        self._error(h, 404, "", f"no route for {h.path}", body)
