"""A loopback HTTP server for tests: serves files with Range support and scripted faults."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Script:
    """What the server does. `faults` are consumed one per request: 'drop' sends half the body
    and closes, 'error' answers 503; when they run out, requests are served normally.
    `always` applies to every request: None, 'error' (503), 'missing' (404) or 'html' (200 page).
    """

    faults: list[str] = field(default_factory=list)
    always: str | None = None
    ranges: bool = True
    requests: list[dict[str, str]] = field(default_factory=list)


class LoopbackServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.script = Script()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                script = server.script
                script.requests.append(dict(self.headers))
                fault = script.faults.pop(0) if script.faults else script.always
                if fault == "error":
                    self.send_error(503, "try later")
                    return
                if fault == "missing":
                    self.send_error(404, "no such file")
                    return
                if fault == "html":
                    page = b"<!DOCTYPE html><html><body>Service unavailable</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                path = server.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404, "no such file")
                    return
                data = path.read_bytes()
                start = 0
                header = self.headers.get("Range")
                if header and script.ranges and header.startswith("bytes="):
                    start = int(header[len("bytes=") :].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault == "drop":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/{name}"

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
