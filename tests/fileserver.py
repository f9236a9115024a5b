"""A local HTTP file server for download tests (127.0.0.1, a thread, no internet).

``FileServer`` serves an in-memory ``{path: bytes}`` dict. Behaviours per path:

* ``drop_after[path] = n``: the first ``drops`` responses for that path announce the full
  length, send ``n`` bytes, then close the connection (an interrupted download);
* ``ignore_range``: answer every request with 200 and the whole body (a server that does
  not support resume).

Every request is recorded (path, Range header, status) so tests can check what the
client asked for.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    def __init__(self, files: dict[str, bytes] | None = None):
        self.files: dict[str, bytes] = dict(files or {})
        self.drop_after: dict[str, int] = {}
        self.drops = 1
        self.ignore_range = False
        self.requests: list[tuple[str, str | None, int]] = []
        self._dropped: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):  # noqa: N802
                path = self.path.lstrip("/")
                rng = self.headers.get("Range")
                body = server.files.get(path)
                if body is None:
                    server.requests.append((path, rng, 404))
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                if rng and not server.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        server.requests.append((path, rng, 416))
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                    server.requests.append((path, rng, 206))
                else:
                    self.send_response(200)
                    server.requests.append((path, rng, 200))
                chunk = body[start:]
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                cut = server.drop_after.get(path)
                if cut is not None and server._dropped.get(path, 0) < server.drops:
                    server._dropped[path] = server._dropped.get(path, 0) + 1
                    self.wfile.write(chunk[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(chunk)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
