"""Is a process that left something behind (a run, a temp file, a staging folder, a claim) still alive?

One answer for the three places that clean up after killed processes (and one removal,
`remove_left_by_dead`, for the last two): the run reaper
(cli/runs.py), publish temp files (publish/files.py) and ingest staging folders (sites/store.py).
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from radar_pipeline.platform.safe_paths import remove_leftover


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
                        log: Callable[[str], None] | None = None, link_ok: bool = False) -> list[Path]:
    """Remove those of `paths` whose name carries (regex group 1 of `pid_pattern`) the pid of a
    process that is gone: a file is unlinked, a folder removed with its contents. Only below
    `root` (default: the folder each path was found in) and never through a symlink
    (safe_paths: a planted link is skipped and logged, what it points at is left alone; with
    `link_ok` the paths are temp links removed as links). Returns what was removed."""
    removed = []
    for path in paths:
        m = re.search(pid_pattern, path.name)
        if not m or pid_alive(int(m.group(1))):
            continue
        if remove_leftover(path.parent if root is None else root, path, link_ok=link_ok, log=log):
            removed.append(path)
    return removed


# --- work claimed by a live process -----------------------------------------------------------
# Two `radar sites ingest` of one warehouse side by side: each stores its file, then scores. The
# second one's "stored but unscored" sites include the first one's, which are only waiting for
# the first one's scoring run (in flight, not interrupted). Each ingest claims the sites it will
# score in a small file named with its pid; the others leave claimed sites alone while that
# process lives (a killed ingest's claim is void: its sites are resumed by the next one).

def claims_folder() -> Path:
    """Where claims live: beside the Dagster instance all `radar` processes of a deployment share."""
    return Path(os.environ.get("DAGSTER_HOME") or "data/dagster_home") / "claims"


def _claim_prefix(scope: str) -> str:
    """The claims' file name prefix of `scope` (a warehouse file, however it was spelled, or a lake)."""
    import hashlib

    if not scope.startswith("ducklake:"):
        scope = os.path.realpath(scope)
    return hashlib.sha256(scope.encode()).hexdigest()[:16]


def claim(scope: str, items: Iterable[str]) -> Path:
    """Record that this process will handle `items` of `scope` (e.g. a warehouse's sites); written
    whole (temp file + rename) so a reader never sees half of it. Remove it with `release`."""
    import json

    folder = claims_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_claim_prefix(scope)}.{os.getpid()}.json"
    tmp = folder / f".{path.name}.tmp"
    tmp.write_text(json.dumps({"scope": scope, "pid": os.getpid(), "items": list(items)}), encoding="utf-8")
    os.replace(tmp, path)
    return path


def release(path: Path | None) -> None:
    if path is not None:
        remove_leftover(path.parent, path)


def claimed_by_others(scope: str) -> dict[str, int]:
    """item -> pid of the other live processes' claims on `scope`, less what this process claimed
    itself (a site in both files is both ingests' to score); claims of dead processes are removed
    (their work is anyone's again)."""
    import json

    folder = claims_folder()
    prefix = _claim_prefix(scope)
    out: dict[str, int] = {}
    own: list[str] = []
    for path in sorted(folder.glob(f"{prefix}.*.json")) if folder.is_dir() else []:
        m = re.fullmatch(rf"{prefix}\.(\d+)\.json", path.name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid != os.getpid() and not pid_alive(pid, cmdline_contains=b"radar"):
            remove_leftover(folder, path)
            continue
        try:
            items = json.loads(path.read_text(encoding="utf-8"))["items"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # released meanwhile, or not ours to read
        if pid == os.getpid():
            own = items
        else:
            out.update(dict.fromkeys(items, pid))
    for item in own:
        out.pop(item, None)
    return out
