"""The pictures folder over HTTP, so the Dagster UI can show a picture inline.

Why: Dagster 1.13 has no image metadata type. The UI renders a markdown metadata value inline in
the asset's metadata table only while it is shorter than 1,000 characters; longer ones (a PNG as
a data URI) hide behind "[Show Markdown]". A markdown image that *links* to the PNG is short, so
it shows at the UI's default size, as long as the browser can fetch the PNG. `radar ui` serves
RADAR_PICTURES this way and sets RADAR_PICTURES_URL for the processes it starts; elsewhere set
RADAR_PICTURES_URL to wherever the pictures folder is served (a web server, a bucket).
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path


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


@contextlib.contextmanager
def serving_pictures(folder: Path, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `folder` on host:port (0 = any free port) in a thread; yields the base URL and sets
    RADAR_PICTURES_URL to it for this process and the processes it starts."""
    folder.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_PicturesHandler, directory=str(folder.resolve()))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="radar-pictures", daemon=True)
    thread.start()
    url = f"http://{host}:{server.server_address[1]}"
    previous = os.environ.get("RADAR_PICTURES_URL")
    os.environ["RADAR_PICTURES_URL"] = url
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        if previous is None:
            os.environ.pop("RADAR_PICTURES_URL", None)
        else:
            os.environ["RADAR_PICTURES_URL"] = previous
