"""Is a process that left something behind (a run, a temp file, a staging folder) still alive?

One answer for the three places that clean up after killed processes (and one removal,
`remove_left_by_dead`, for the last two): the run reaper
(cli/runs.py), publish temp files (publish/build.py) and ingest staging folders (sites/store.py).
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from radar_pipeline.safe_paths import remove_leftover


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


def remove_left_by_dead(paths: Iterable[Path], pid_pattern: str, *, root: Path | None = None,
                        log: Callable[[str], None] | None = None) -> list[Path]:
    """Remove those of `paths` whose name carries (regex group 1 of `pid_pattern`) the pid of a
    process that is gone: a file is unlinked, a folder removed with its contents. Only below
    `root` (default: the folder each path was found in) and never through a symlink
    (safe_paths: a planted link is skipped and logged, what it points at is left alone).
    Returns what was removed."""
    removed = []
    for path in paths:
        m = re.search(pid_pattern, path.name)
        if not m or pid_alive(int(m.group(1))):
            continue
        if remove_leftover(path.parent if root is None else root, path, log=log):
            removed.append(path)
    return removed
