"""Is a process that left something behind (a run, a temp file, a staging folder) still alive?

One answer for the three places that clean up after killed processes: the run reaper
(cli/runs.py), publish temp files (publish/build.py) and ingest staging folders (sites/store.py).
"""
from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int, *, cmdline_contains: bytes | None = None) -> bool:
    """True while `pid` exists. With `cmdline_contains`, a pid recycled by an unrelated
    program (its command line lacks that text) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    if cmdline_contains is None:
        return True
    try:
        return cmdline_contains in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # no /proc (macOS) or it vanished meanwhile: assume alive, never reap a live run
        return True
