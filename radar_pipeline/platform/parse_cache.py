"""Parsed side files kept between processes (issue 22 item 3: "read only when they changed").

Every Dagster run is a new process, and each reads the overrides folder and the user indicator
files again: a 100 MB file took 9-13 s to parse, at every run. A file's parse is a function of
its bytes, its name and the rules that judge it, so this cache keeps the parsed frames as
Arrow IPC files (lz4) under RADAR_CACHE (default data/cache), keyed by exactly those:

    <RADAR_CACHE>/parsed/<kind>/<path key>-<content key>/   frame_<i>_<part>.arrow ... entry.json

* the content key is sha256 over the file's sha256 (streamed by `text_input.scan_file`, which
  every reader runs anyway to refuse a non-UTF-8 file), its name, the caller's rules key and
  the source code of the modules that parse it (`code_version`): an edited rule table or a new
  release of the parser never reads an old entry;
* `entry.json` is written last, after the frames: an entry without it (a process killed while
  writing) is not an entry, and is removed with the path's other entries at the next write;
* only the newest entry of a source path is kept (the path key), and an entry nobody read for
  PRUNE_DAYS days is removed, so a folder whose files come and go does not grow the cache.

The cache is an optimisation only: anything wrong with it (unwritable, a symlink planted in
it, a damaged file) is logged and the file is parsed as if there were no cache. Every
write and deletion goes through `safe_paths` (issue 22 item 1). A parse that raised (a file
that cannot be used) is never cached: it is parsed, and refused, again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from radar_pipeline.platform import safe_paths

if TYPE_CHECKING:
    import polars as pl

logger = logging.getLogger(__name__)

PRUNE_DAYS = 30
MARKER = "entry.json"


def cache_root() -> Path:
    """RADAR_CACHE: caches the pipeline can always rebuild (default data/cache)."""
    return Path(os.environ.get("RADAR_CACHE", "data/cache"))


def code_version(*modules: str) -> str:
    """sha256 over the source of `modules` (imported names): the parser's code is part of the key."""
    digest = hashlib.sha256()
    for name in modules:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        digest.update(name.encode())
        if path and Path(path).is_file():
            digest.update(Path(path).read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Key:
    kind: str           # "overrides", "user", ...: one folder each
    path_key: str       # which source file (its resolved path), so that only its newest entry is kept
    content_key: str    # what the parse depends on: bytes, name, rules, code

    @property
    def name(self) -> str:
        return f"{self.path_key}-{self.content_key}"


def key(kind: str, path: Path, sha256: str, rules: str) -> Key:
    path_key = hashlib.sha256(os.fsencode(Path(path).resolve())).hexdigest()[:16]
    content = hashlib.sha256("\0".join((sha256, Path(path).name, rules)).encode("utf-8", "surrogatepass"))
    return Key(kind, path_key, content.hexdigest()[:32])


def _folder(k: Key) -> Path:
    return cache_root() / "parsed" / k.kind


# Rows per part: a part is written (and read back) at a time, never the whole result. Arrow IPC, not
# Parquet: polars' Parquet writer took ~30 MiB of buffers at the first write (a 100 MB overrides
# file's parse went from 298 to 335 MiB), its IPC writer ~1 MiB.
PART_ROWS = 65_536


def load(k: Key) -> tuple[tuple[list[pl.DataFrame], ...], dict] | None:
    """The frames stored under `k`, each as its list of parts (in order), and the entry's info;
    None when there is no entry or it cannot be read."""
    import polars as pl

    entry = _folder(k) / k.name
    marker = entry / MARKER
    try:
        safe_paths.checked(cache_root(), marker)  # never read through a link planted in the cache
        info = json.loads(marker.read_text(encoding="utf-8"))
        frames = tuple([pl.read_ipc(entry / f"frame_{i}_{j:06d}.arrow") for j in range(n)]
                       for i, n in enumerate(info["parts"]))
    except FileNotFoundError:
        return None
    except (safe_paths.UnsafePathError, OSError, ValueError, KeyError, pl.exceptions.PolarsError) as exc:
        logger.warning(f"parse cache entry {entry} not used ({type(exc).__name__}: {exc}); parsing the file")
        return None
    try:
        os.utime(marker)  # read: not pruned for another PRUNE_DAYS
    except OSError:
        pass
    return frames, info.get("info", {})


class Writer:
    """An entry written part by part while the file is parsed (`add`), so that writing it adds
    no copy of the whole result to the parse's memory; `commit` makes it visible (the marker,
    then one rename), anything else leaves no entry. Best effort: after a failure (logged) the
    writer ignores further parts and `commit` returns False."""

    def __init__(self, k: Key, n_frames: int):
        self.key, self.root = k, cache_root()
        self.folder = _folder(k)
        self.tmp = self.folder / f".tmp-{k.name}-{os.getpid()}"
        self.parts = [0] * n_frames
        self.pending: list[list[pl.DataFrame]] = [[] for _ in range(n_frames)]
        self.ok = self._try(self._start)

    def _start(self) -> None:
        safe_paths.make_dirs(self.root, self.folder)
        safe_paths.remove(self.root, self.tmp)
        safe_paths.make_dirs(self.root, self.tmp)

    def _try(self, step, *args) -> bool:
        try:
            step(*args)
            return True
        except (safe_paths.UnsafePathError, OSError) as exc:
            logger.warning(f"parse cache not written ({exc}); the file will be parsed again next time")
            safe_paths.remove_leftover(self.root, self.tmp, log=logger.warning)
            return False

    def add(self, index: int, frame: pl.DataFrame) -> None:
        """Frame `index` continues with `frame`'s rows (written once PART_ROWS are pending)."""
        if not self.ok:
            return  # (an empty frame is kept too: a frame without rows still has its columns)
        self.pending[index].append(frame)
        if sum(f.height for f in self.pending[index]) >= PART_ROWS:
            self.ok = self._try(self._flush, index)

    def _flush(self, index: int) -> None:
        import polars as pl

        frames, self.pending[index] = self.pending[index], []
        if frames:
            part = self.tmp / f"frame_{index}_{self.parts[index]:06d}.arrow"
            pl.concat(frames, rechunk=False).write_ipc(safe_paths.checked(self.root, part), compression="lz4")
            self.parts[index] += 1

    def _finish(self, info: dict | None) -> None:
        for index in range(len(self.parts)):
            self._flush(index)
        (safe_paths.checked(self.root, self.tmp / MARKER)).write_text(
            json.dumps({"parts": self.parts, "info": info or {}, "written": time.time()}), encoding="utf-8")
        entry = self.folder / self.key.name
        safe_paths.remove(self.root, entry)
        os.replace(safe_paths.checked(self.root, self.tmp), safe_paths.checked(self.root, entry))

    def commit(self, info: dict | None = None) -> bool:
        if not self.ok or not self._try(self._finish, info):
            return False
        _prune(self.folder, keep=self.key)
        return True

    def abort(self) -> None:
        if self.ok:
            safe_paths.remove_leftover(self.root, self.tmp, log=logger.warning)
            self.ok = False


def store(k: Key, frames: tuple[pl.DataFrame | list[pl.DataFrame], ...], info: dict | None = None) -> bool:
    """Keep `frames` (each a frame or a list of parts) and a small JSON-able `info` under `k`, in
    place of the path's older entries. False (logged) when the cache cannot be written."""
    writer = Writer(k, len(frames))
    for index, frame in enumerate(frames):
        for part in frame if isinstance(frame, list) else [frame]:
            for piece in part.iter_slices(PART_ROWS) if part.height else [part]:
                writer.add(index, piece)
    return writer.commit(info)


def _prune(folder: Path, keep: Key) -> None:
    """Remove the path's other entries, leftovers of writers that are gone, and entries nobody
    read for PRUNE_DAYS days."""
    root = cache_root()
    old = time.time() - PRUNE_DAYS * 86400
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name == keep.name:
            continue
        path = folder / name
        if name.startswith(".tmp-"):
            pid = name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                safe_paths.remove_leftover(root, path, log=logger.warning)
            continue
        try:
            stale = os.lstat(path / MARKER).st_mtime < old if not os.path.islink(path) else True
        except OSError:
            stale = True  # no marker: a damaged entry
        if name.startswith(keep.path_key + "-") or stale:
            safe_paths.remove_leftover(root, path, log=logger.warning)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
