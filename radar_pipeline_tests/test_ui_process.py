"""`radar ui` stops with everything it started: a SIGTERM (kill, systemd, a container stop) to
the radar process must take dagster dev's webserver, daemon and code server down with it, also
when a shell started it in the background (`radar ui &` leaves SIGINT ignored)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from radar_pipeline.platform import settings

sys.path.insert(0, str(settings.REPO_DIR / "scripts"))
from screenshots import group_members, stop_group

pytestmark = pytest.mark.slow  # starts radar ui (dagster dev, its daemon and code server): `python -m pytest -m slow`


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def test_sigterm_to_radar_ui_stops_dagster_dev_and_its_children(tmp_path):
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "RADAR_WAREHOUSE": str(tmp_path / "w.duckdb"),
           "RADAR_PICTURES": str(tmp_path / "pictures"), "RADAR_SITES_INBOX": str(tmp_path / "inbox"),
           "RADAR_PUBLISHED": str(tmp_path / "published" / "radar.duckdb")}
    radar = Path(sys.executable).parent / "radar"
    log = open(tmp_path / "ui.log", "wb")
    # its own process group, and SIGINT ignored as a shell's `&` leaves it
    proc = subprocess.Popen([str(radar), "ui", "--port", str(port)], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    pgid = proc.pid
    try:
        deadline = time.monotonic() + 180
        while not _up(f"http://127.0.0.1:{port}/server_info"):
            assert proc.poll() is None, (tmp_path / "ui.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the UI did not come up in 180 s"
            time.sleep(1)
        assert len(group_members(pgid)) >= 4  # radar, dagster dev, webserver, daemon (+ code servers)

        os.kill(proc.pid, signal.SIGTERM)  # the radar process only, as `kill PID` does
        proc.wait(timeout=60)
        deadline = time.monotonic() + 60
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert group_members(pgid) == [], (tmp_path / "ui.log").read_text()[-3000:]
        assert not _up(f"http://127.0.0.1:{port}/server_info")
    finally:
        stop_group(proc)
        log.close()
