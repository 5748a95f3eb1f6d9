"""The files and folders of a published snapshot: temp DuckDB files built beside their target,
Parquet exports with their descriptions, the `parquet` symlinks swapped atomically, old snapshots
pruned, leftovers of killed publishes and unlisted buyers removed. Every path goes through
radar_pipeline/platform/safe_paths.py (build.py's docstring says how a snapshot is swapped in)."""
from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

import duckdb

from radar_pipeline.platform.identifiers import is_id
from radar_pipeline.platform.processes import remove_left_by_dead
from radar_pipeline.platform.safe_paths import UnsafePathError, checked, make_dirs, remove, remove_leftover
from radar_pipeline.publish.buyers import buyer_id_of
from radar_pipeline.publish.tables import ALL_TABLES, STORAGE_VERSION, quoted

logger = logging.getLogger(__name__)


def arrow_schema_blob(con: duckdb.DuckDBPyConnection, db: str, table: str, tmp: Path,
                       descriptions: dict[str, str], about: str) -> str:
    """The Arrow schema the Parquet file of `table` will have (read back from a zero-row copy
    written at `tmp`, so every type is the one the Parquet reader derives), with each column's
    description as field metadata `description`, serialized as Parquet readers expect it under
    the `ARROW:schema` key (base64 of the IPC schema message)."""
    import base64

    import pyarrow as pa_
    import pyarrow.parquet as pq

    con.execute(f"copy (select * from {db}.main.{table} limit 0) to {quoted(tmp)} (format parquet)")
    try:
        schema = pq.read_schema(tmp)
    finally:
        os.remove(tmp)
    schema = pa_.schema([f.with_metadata({"description": descriptions[f.name]}) if descriptions.get(f.name) else f
                         for f in schema], metadata={"description": about} if about else None)
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def export_parquet(con: duckdb.DuckDBPyConnection, db: str, root: Path, folder: Path) -> None:
    """One Parquet file per table in `folder` (a new snapshot folder, linked in later). Each file
    is written under a temp name beside it and renamed over its final name (os.replace): whoever
    opens `<table>.parquet`, by any path, sees a whole file. Each carries the data dictionary's
    descriptions: per column as Arrow field metadata (`description`, what pyarrow, pandas and
    Arrow-based BI readers show), the table's as schema metadata `description` (Arrow) and as the
    file's key-value metadata `description` (DuckDB's parquet_kv_metadata)."""
    folder = make_dirs(root, folder)
    dictionary = con.execute(f"select table_name, column_name, description, table_description "
                             f"from {db}.main.data_dictionary").fetchall()
    for table in ALL_TABLES:
        columns = {c: d for t, c, d, _ in dictionary if t == table}
        about = next((td for t, _, _, td in dictionary if t == table and td), "")
        final = checked(root, folder / f"{table}.parquet")
        tmp = checked(root, folder / f".{table}.parquet.{os.getpid()}.tmp")
        blob = arrow_schema_blob(con, db, table, tmp, columns, about)
        con.execute(f"copy {db}.main.{table} to {quoted(tmp)} (format parquet, "
                    f"kv_metadata {{'ARROW:schema': {quoted(blob)}, 'description': {quoted(about)}}})")
        os.replace(tmp, final)


def swap_symlink(root: Path, link: Path, target: Path) -> None:
    """Point `link` at `target` atomically (a new symlink renamed over the old one). The old
    link is replaced as a link, wherever it points, never followed; its folder must be a real
    folder below `root`."""
    link, target = checked(root, link, link_ok=True), checked(root, target)
    make_dirs(root, link.parent)
    if os.path.lexists(link) and not link.is_symlink():  # a real folder from a manual copy: move it aside
        os.replace(link, checked(root, link.with_name(link.name + f".replaced-{secrets.token_hex(3)}")))
    # the pid in the name: a killed publish's temp link is removed by the next one (remove_orphans)
    tmp = checked(root, link.with_name(f".{link.name}.{secrets.token_hex(4)}.{os.getpid()}.lnk"))
    os.symlink(os.path.relpath(target, link.parent), tmp)
    os.replace(tmp, link)


def is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)  # lstat: a link to a folder is not one
    except FileNotFoundError:
        return False


def prune(root: Path, snapshots: Path, keep: str, n_keep: int, log=print) -> list[str]:
    """Keep the newest `n_keep` snapshot folders of one scope (`.snapshots/all`,
    `.snapshots/buyer-<name>`; ids sort by time), always `keep`. Returns the removed ids. A
    link among them is not one publish made: neither counted nor followed, only logged; so is
    a scope folder reached through a link (pruning is best effort: it runs after the swap)."""
    try:
        snapshots = checked(root, snapshots)
    except UnsafePathError as exc:
        log(f"snapshots not pruned: {exc}")
        return []
    if not is_real_dir(snapshots):
        return []
    entries = sorted(snapshots.iterdir())
    for link in (p for p in entries if p.is_symlink()):
        log(f"left in place: {link} is a symlink publish did not make")
    dirs = [p for p in entries if is_real_dir(p)]
    return [old.name for old in dirs[:-max(n_keep, 1)]
            if old.name != keep and remove_leftover(root, old, log=log)]


def build_file(con: duckdb.DuckDBPyConnection, root: Path, target: Path, snapshot_id: str, alias: str,
                fill) -> Path:
    """Create a temp DuckDB file next to `target` (below `root`), attach it as `alias`, run
    fill(alias), detach (checkpoint). Returns the temp path; the caller renames it over `target`."""
    target = checked(root, target)
    make_dirs(root, target.parent)
    # the pid in the name lets the next publish remove what a killed one left (remove_orphans)
    tmp = checked(root, target.with_name(f".{target.name}.{snapshot_id}.{os.getpid()}.tmp"))
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        remove(root, leftover)  # a link planted at a temp name is refused, not written through
    con.execute(f"attach {quoted(tmp)} as {alias} (storage_version {quoted(STORAGE_VERSION)})")
    try:
        fill(alias)
        con.execute(f"detach {alias}")
    except BaseException:
        try:
            con.execute(f"detach {alias}")
        except duckdb.Error:
            pass
        # its WAL too: after a disk-full error DuckDB leaves `<tmp>.wal` behind the detached file
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            remove_leftover(root, leftover)
        raise
    return tmp


def remove_orphans(out: Path, log=None) -> list[Path]:
    """Temp files of publishes whose process died (`.<name>.<snapshot>.<pid>.tmp[.wal]` in the
    published folder and its buyers folder, temp links `.parquet.<hex>.<pid>.lnk` there and in
    the buyers' folders, and `.spill.<pid>.*` spill folders): removed at the start of the next
    publish, never through a symlink (a planted one is logged and left; a temp link is removed
    as a link, never followed)."""
    temp_files, temp_links, spill_dirs = [], [], []
    buyer_dirs = [p for p in (out / "buyers").iterdir() if is_real_dir(p)] if is_real_dir(out / "buyers") else []
    for folder in (out, out / "buyers", *buyer_dirs):
        try:
            folder = checked(out, folder)
        except UnsafePathError as exc:
            (log or logger.warning)(f"left in place: {exc}")
            continue
        if folder.is_dir():
            # links stay in the lists so that remove_left_by_dead logs them (safe_paths refuses them)
            temp_files += [p for p in folder.glob(".*.tmp*") if p.is_symlink() or p.is_file()]
            temp_links += [p for p in folder.glob(".*.lnk") if p.is_symlink()]
    if out.is_dir():
        spill_dirs = [p for p in checked(out, out).glob(".spill.*") if p.is_symlink() or p.is_dir()]
    return (remove_left_by_dead(temp_files, r"\.(\d+)\.tmp(\.wal)?$", root=out, log=log)
            + remove_left_by_dead(temp_links, r"\.(\d+)\.lnk$", root=out, log=log, link_ok=True)
            + remove_left_by_dead(spill_dirs, r"^\.spill\.(\d+)\.", root=out, log=log))


def check_targets(out: Path, paths: Iterable[Path], links: Iterable[Path] = ()) -> None:
    """Raise (safe_paths.UnsafePathError) if any path publish will write, or link it will swap,
    is unsafe: called before anything is built and again before the first swap."""
    for path in paths:
        checked(out, path)
    for link in links:
        checked(out, link, link_ok=True)


def remove_unlisted_buyers(out: Path, names: set[str], log) -> list[str]:
    """Buyers no longer listed lose their file, Parquet link and snapshots (the folder of lists
    is the source of truth). Only names publish writes are touched: `buyer_file_name` names, and
    `<buyer_id>.duckdb` of earlier versions (never a path from a stem like `..`, of `...duckdb`);
    compared without case, as the file system may do. Returns the removed buyer ids."""
    try:
        buyers_dir, snapshots = checked(out, out / "buyers"), out / ".snapshots"
    except UnsafePathError as exc:  # best effort, after the swap: logged, not raised
        log(f"unlisted buyers not removed: {exc}")
        return []
    current = {n.lower() for n in names}
    removed = []
    for f in sorted(buyers_dir.glob("*.duckdb")) if buyers_dir.is_dir() else []:
        name = f.name.removesuffix(".duckdb")
        buyer_id = buyer_id_of(name) or (name if is_id(name) else None)
        if buyer_id is None or name.lower() in current or is_real_dir(f):
            continue
        if not remove_leftover(out, f, log=log):
            continue
        link = buyers_dir / name / "parquet"
        if os.path.islink(link):  # a real folder there is someone's copy: left alone
            remove_leftover(out, link, link_ok=True, log=log)
        try:
            os.rmdir(checked(out, buyers_dir / name))  # only if empty
        except UnsafePathError as exc:
            log(f"left in place: {exc}")
        except OSError:
            pass  # not empty (a copy moved aside as parquet.replaced-*) or already gone
        remove_leftover(out, snapshots / f"buyer-{name}", log=log)
        removed.append(buyer_id)
    return removed
