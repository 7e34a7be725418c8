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
    `always` applies to every request: None, 'error' (503), 'missing' (404), 'html' (200 page),
    'redirect' (302 to `location`), 'stall' (headers, then nothing until the server stops),
    'drip' (headers, then one byte every `drip_seconds`) or 'endless' (zeros without a
    Content-Length until the client goes away). `content_length`, when set, is sent instead of
    the true one.
    """

    faults: list[str] = field(default_factory=list)
    always: str | None = None
    ranges: bool = True
    location: str = ""
    content_length: list[str] | None = None
    drip_seconds: float = 0.1
    requests: list[dict[str, str]] = field(default_factory=list)


class _QuietServer(ThreadingHTTPServer):
    """A client that gives up mid-body (what the download's limits do on purpose) is no error of
    the server's: say nothing, rather than print a traceback into the test output."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class LoopbackServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.script = Script()
        self.stopping = threading.Event()  # releases handlers that stall or drip
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
                if fault == "redirect":
                    self.send_response(302)
                    self.send_header("Location", script.location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault in ("stall", "drip", "endless"):
                    self._trickle(fault, script)
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
                for value in script.content_length or [str(len(body))]:
                    self.send_header("Content-Length", value)
                self.end_headers()
                if fault == "drop":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def _trickle(self, fault: str, script: Script) -> None:
                self.send_response(200)
                if fault != "endless":  # the size of the real archive, which never comes
                    self.send_header("Content-Length", "170498071")
                self.end_headers()
                self.wfile.flush()
                try:
                    while not server.stopping.is_set():
                        if fault == "endless":
                            self.wfile.write(bytes(1 << 16))
                        elif fault == "drip":
                            self.wfile.write(b"\0")
                            self.wfile.flush()
                            server.stopping.wait(script.drip_seconds)
                        else:
                            server.stopping.wait(0.05)
                except OSError:  # the client gave up: what the test wants
                    pass
                self.close_connection = True

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/{name}"

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
