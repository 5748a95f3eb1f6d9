"""The pictures folder over HTTP, so the Dagster UI can show a picture inline.

Why: Dagster 1.13 has no image metadata type. The UI renders a markdown metadata value inline in
the asset's metadata table only while it is shorter than 1,000 characters; longer ones (a PNG as
a data URI) hide behind "[Show Markdown]". A markdown image that *links* to the PNG is short, so
it shows at the UI's default size, as long as the browser can fetch the PNG. `radar ui` serves
RADAR_PICTURES this way.

The link must outlive the process that drew the picture (a restart, `dagster dev` instead of
`radar ui`), so the address is fixed: RADAR_PICTURES_URL, default DEFAULT_PICTURES_URL (also in
.env, which `dagster dev` and `dg dev` read). The code-location server (the `dagster api grpc`
process that `radar ui`, `dagster dev`, `dg dev` and dagster-webserver all start) serves the
folder there: it is the one long-lived process every way of starting the UI has. Behind a real
web server or a bucket, set RADAR_PICTURES_URL to it (a non-local address is never served here,
unless RADAR_PICTURES_BIND names the interface, e.g. 0.0.0.0); RADAR_PICTURES_URL="" switches
the linked pictures off (the embedded preview stays).
"""
from __future__ import annotations

import functools
import http.server
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_PICTURES_URL = "http://127.0.0.1:3001"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# how often a code server whose port is still held (its predecessor shutting down after a code
# reload, or a second UI on the same folder) tries again
RETRY_SECONDS = 2.0
log = logging.getLogger(__name__)


def pictures_url() -> str:
    """Where the browser fetches the pictures: RADAR_PICTURES_URL, default DEFAULT_PICTURES_URL;
    "" when switched off."""
    return os.environ.get("RADAR_PICTURES_URL", DEFAULT_PICTURES_URL).strip().rstrip("/")


class _PicturesHandler(http.server.SimpleHTTPRequestHandler):
    """Files only (no folder listings), no request log on the terminal `radar ui` shares."""

    def list_directory(self, path):
        self.send_error(404, "no listing")

    def log_message(self, format, *args):
        pass

    def end_headers(self):
        # the asset's preview URL changes with the picture (?v=...): a fresh fetch each time
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()


def _bind_address(url: str) -> tuple[str, int] | None:
    """(host, port) this machine should serve `url` on, or None: not http, no explicit port, or a
    non-local host without RADAR_PICTURES_BIND."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "http" or not port or parts.path not in ("", "/"):
        return None
    bind = os.environ.get("RADAR_PICTURES_BIND", "").strip()
    if bind:
        return bind, port
    return (parts.hostname, port) if parts.hostname in LOOPBACK else None


def is_code_server(argv: Sequence[str] | None = None) -> bool:
    """True in the process that serves the code location to the webserver and daemon: `dagster api
    grpc ...` (what dagster dev / dagster-webserver / dg dev spawn) or `dagster code-server start`."""
    args = list(sys.argv if argv is None else argv)[1:]
    return any(args[i:i + 2] in (["api", "grpc"], ["code-server", "start"]) for i in range(len(args)))


_started: dict[tuple[str, int], threading.Thread] = {}


def serve_from_code_server(folder: Path, argv: Sequence[str] | None = None) -> threading.Thread | None:
    """In the code server only: serve `folder` at pictures_url() from a daemon thread, binding as
    soon as the port is free (retrying every RETRY_SECONDS). Other processes (run workers, the
    CLI, tests) return None at once. RADAR_PICTURES_SERVE=0 switches it off."""
    if os.environ.get("RADAR_PICTURES_SERVE", "1") == "0" or not is_code_server(argv):
        return None
    address = _bind_address(pictures_url())
    if address is None or address in _started:
        return _started.get(address) if address else None
    handler = functools.partial(_PicturesHandler, directory=str(folder.resolve()))

    def run() -> None:
        warned = False
        while True:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                server = http.server.ThreadingHTTPServer(address, handler)
            except OSError as exc:
                if not warned:
                    log.info("pictures: %s:%s busy (%s); retrying every %ss", *address, exc, RETRY_SECONDS)
                    warned = True
                time.sleep(RETRY_SECONDS)
                continue
            server.daemon_threads = True
            server.serve_forever()

    thread = threading.Thread(target=run, name="radar-pictures", daemon=True)
    thread.start()
    _started[address] = thread
    return thread
