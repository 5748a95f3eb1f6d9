"""Writes and deletions that cannot leave the folder the pipeline was configured with.

Others may be able to write in the published folder (a shared drive, a BI server's account):
a symlink planted at `published/buyers`, `published/.snapshots`, a buyer's folder or a
snapshot folder would otherwise make publish write into, or prune and delete, whatever the
link points at. Every file or folder publish writes or deletes (the main and buyer files and
their temp files, `.snapshots/...`, `buyers/...`, the `parquet` links, spill folders) and every
leftover the pipeline removes (temp files and spill folders of dead publishes, ingest staging
folders) goes through `checked`:

* the configured root (the published folder, the temp folder) is resolved once: a link AT
  the root is the administrator's configuration, like any path setting;
* below the root, no component of the path may be a symlink — except, where the caller says
  so (`link_ok`), the last one: the `parquet` links publish itself makes and swaps. Such a
  link is only ever replaced or removed as a link (`os.replace` / `os.unlink` act on the link),
  never followed;
* the resolved path must be inside the resolved root.

A refused write raises UnsafePathError naming the path and the reason; a refused removal of a
leftover (best effort by nature) is skipped and logged (`remove_leftover`). The checks run just
before each operation; they are not atomic with it (DuckDB opens files by path), but every
folder the pipeline removes is removed by `shutil.rmtree`, which never follows a link inside it.
"""
from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)


class UnsafePathError(RuntimeError):
    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"refusing to write or delete {path}: {reason}")
        self.path, self.reason = Path(path), reason


def checked(root: Path | str, path: Path | str, *, link_ok: bool = False) -> Path:
    """`path` (inside `root`) as a path through the resolved root, safe to write or delete;
    raises UnsafePathError when it is not inside `root`, when a component below `root` is a
    symlink (the last one allowed with `link_ok`: a link to replace or remove as a link) or
    a file where a folder is expected, or when it resolves outside `root`."""
    root, path = Path(root).absolute(), Path(path).absolute()
    real_root = Path(os.path.realpath(root))
    for base in (root, real_root):
        if path.is_relative_to(base):
            parts = path.relative_to(base).parts
            break
    else:
        raise UnsafePathError(path, f"not inside {root}")
    if ".." in parts:
        raise UnsafePathError(path, "a '..' component")
    current = real_root
    for i, part in enumerate(parts):
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            break  # the rest does not exist yet: make_dirs creates real folders
        last = i == len(parts) - 1
        if stat.S_ISLNK(mode) and not (last and link_ok):
            raise UnsafePathError(current, "it is a symlink the pipeline did not make (never followed)")
        if not last and not stat.S_ISDIR(mode):
            raise UnsafePathError(current, "it is not a folder")
    target = real_root.joinpath(*parts)
    # defence in depth: where the path really lands (for a link kept as a link: its folder)
    landing = Path(os.path.realpath(target.parent if link_ok else target))
    if not landing.is_relative_to(real_root):
        raise UnsafePathError(target, f"it resolves to {landing}, outside {real_root}")
    return target


def make_dirs(root: Path | str, path: Path | str) -> Path:
    """`mkdir -p` of `path` below `root` that creates or accepts only real folders (an
    existing link, even a dangling one, is refused rather than written through)."""
    target = checked(root, path)
    real_root = Path(os.path.realpath(Path(root).absolute()))
    real_root.mkdir(parents=True, exist_ok=True)
    current = real_root
    for part in target.relative_to(real_root).parts:
        current = current / part
        try:
            os.mkdir(current)
        except FileExistsError:
            pass
        if not stat.S_ISDIR(os.lstat(current).st_mode):  # lstat: a link is not a folder
            raise UnsafePathError(current, "it is a symlink or a file, not a folder")
    return target


def remove(root: Path | str, path: Path | str, *, link_ok: bool = False) -> bool:
    """Delete a file, a folder with its contents, or (with `link_ok`) a link itself, never
    what a link points at. False when there was nothing to delete."""
    target = checked(root, path, link_ok=link_ok)
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(mode):
        shutil.rmtree(target)  # fd-based on Linux and macOS: never follows a link inside
    else:
        os.unlink(target)  # a file, or a link as a link (checked() refused it unless link_ok)
    return True


def remove_leftover(root: Path | str, path: Path | str, *, link_ok: bool = False,
                    log: Callable[[str], None] | None = None) -> bool:
    """`remove` for best-effort cleanup (temp files, old snapshots, spill folders): a refused or
    failed removal is logged with its reason and skipped. True when something was removed."""
    try:
        return remove(root, path, link_ok=link_ok)
    except (UnsafePathError, OSError) as exc:
        (log or logger.warning)(f"left in place: {exc}")
        return False
