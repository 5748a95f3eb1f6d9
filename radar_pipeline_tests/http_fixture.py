"""A scripted local HTTP server for offline fetch tests (127.0.0.1 only).

Each path gets a list of responses served in order (the last one repeats):
(status, headers, body) or the special actions "sleep:<s>" (delay before
answering), "reset" (close the socket without answering), "truncate"
(promise more bytes than are sent).
"""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedServer:
    def __init__(self):
        self.routes: dict[str, list] = {}
        self.hits: dict[str, list[float]] = {}
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def route(self, path: str, *responses) -> str:
        self.routes[path] = list(responses)
        self.hits[path] = []
        return self.base + path

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                script = server.routes.get(path)
                if script is None:
                    self.send_error(404)
                    return
                hits = server.hits[path]
                hits.append(time.monotonic())
                step = script[min(len(hits) - 1, len(script) - 1)]
                if isinstance(step, str) and step.startswith("sleep:"):
                    time.sleep(float(step.split(":")[1]))
                    step = (200, {}, b"late")
                if step == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    return
                if isinstance(step, tuple) and step[0] == "truncate":
                    body = step[1]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body) * 2))
                    self.end_headers()
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, headers, body = step
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def get_when_served(url: str, timeout: float = 15.0) -> bytes:
    """GET `url` from a server that may still be starting (or restarting): a refused connection
    is tried again every 0.2 s until `timeout`; an HTTP error status is raised at once."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
