"""Is a process that left something behind (a run, a temp file, a staging folder) still alive?

One answer for the three places that clean up after killed processes (and one removal,
`remove_left_by_dead`, for the last two): the run reaper
(cli/runs.py), publish temp files (publish/build.py) and ingest staging folders (sites/store.py).
"""
from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
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


def remove_left_by_dead(paths: Iterable[Path], pid_pattern: str) -> list[Path]:
    """Remove those of `paths` whose name carries (regex group 1 of `pid_pattern`) the pid of a
    process that is gone: a file is unlinked, a folder removed with its contents (never
    followed through a symlink). Returns what was removed."""
    removed = []
    for path in paths:
        m = re.search(pid_pattern, path.name)
        if not m or pid_alive(int(m.group(1))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file():
            path.unlink(missing_ok=True)
        else:
            continue
        removed.append(path)
    return removed
