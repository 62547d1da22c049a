"""Test support: a real HTTP file server on loopback that counts GETs, can demand a header, and can fail on purpose."""

from __future__ import annotations

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.gets: dict[str, int] = {}
        self.drop_next = 0  # this many GETs send half the body, then close the connection
        self.required_header: tuple[str, str] | None = None
        self.cut_unframed_next = 0  # this many GETs send half the body without Content-Length, then close
        self.gzip = False  # answer GETs with Content-Encoding: gzip (HEAD announces no length then)
        self.hold = ""  # GETs and HEADs of paths starting with this wait for `release` (a storage server that hangs)
        self.release = threading.Event()
        self.held = 0  # requests that have been held so far
        store = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _authorized(self) -> bool:
                if store.hold and self.path.startswith(store.hold):
                    store.held += 1
                    store.release.wait(120)
                if store.required_header is None:
                    return True
                name, value = store.required_header
                if self.headers.get(name) != value:
                    self.send_error(403)
                    return False
                return True

            def do_HEAD(self) -> None:
                if self._authorized():
                    super().do_HEAD()

            def do_GET(self) -> None:
                if not self._authorized():
                    return
                store.gets[self.path] = store.gets.get(self.path, 0) + 1
                if store.cut_unframed_next > 0 or store.gzip:
                    path = Path(self.translate_path(self.path))
                    data = path.read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Type", self.guess_type(str(path)))
                    if store.gzip:
                        import gzip

                        data = gzip.compress(data)
                        self.send_header("Content-Encoding", "gzip")
                        self.send_header("Content-Length", str(len(data)))
                    else:
                        store.cut_unframed_next -= 1
                        data = data[: len(data) // 2]
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if store.drop_next > 0:
                    store.drop_next -= 1
                    path = Path(self.translate_path(self.path))
                    data = path.read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Type", self.guess_type(str(path)))
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                super().do_GET()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Store:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
