"""The DuckDB warehouse: a Dagster resource plus the few write patterns we allow.

DuckDB takes one writer *or* many readers per file. Every asset that writes
declares `pool="duckdb_write"` (dagster.yaml limits pools to 1 slot) so runs
never fight for the file; BI tools read the separately published copy.
Writes are delete-then-insert of one partition slice inside a transaction:
rerunning an edition replaces exactly its rows, and a failure rolls back to
the last good state.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from radar_pipeline.metadata import WAREHOUSE, saq_table, warehouse_ddl
from radar_pipeline.platform import lake, lake_commits, settings
from radar_pipeline.platform.lazy import lazy_attributes

if TYPE_CHECKING:
    import polars as pl

# the tables radar_pipeline/metadata does not declare yet (created after the declared ones)
DDL_FILE = settings.SQL_DIR / "warehouse" / "create_tables.sql"


def read_sql(name: str) -> str:
    """Text of sql/<name>.sql (one SELECT per file, `$param` placeholders)."""
    return (settings.SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def is_lake_connection(con: duckdb.DuckDBPyConnection) -> bool:
    """True when `con` is a DuckLake session from connect() (the lake is its default catalog).
    Sessions lake.connect handed out are known without a query (each query outside a
    transaction costs the lake a catalog round trip)."""
    if lake.session_key(con) is not None:
        return True
    return con.sql("select current_database()").fetchall()[0][0] == lake.ALIAS


def schema_ddl(*, lake_target: bool = False) -> str:
    """The warehouse DDL: every table declared in radar_pipeline/metadata (generated from the one
    declaration, so it cannot drift from the pandera schemas and the Dagster column metadata),
    then sql/warehouse/create_tables.sql for the tables not declared there yet. Generated at run
    time rather than into a .sql file: nothing to keep in sync, and a table whose columns come
    from a rule file gets them from the rules in use. DuckLake has no PRIMARY KEY."""
    rest = DDL_FILE.read_text(encoding="utf-8")
    if lake_target:
        return warehouse_ddl(keys=False) + "\n" + lake.lake_ddl(rest)
    return warehouse_ddl() + "\n" + rest


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    if is_lake_connection(con):
        # no PRIMARY KEY on a lake; two writers creating a new lake at once may race (retried)
        lake.retry(lambda: con.execute(schema_ddl(lake_target=True) + ";\n" + lake_commits.TAGS_DDL))
        lake.retry(lambda: saq_table.ensure(con))
        return
    _migrate_countries_table(con)
    _drop_retired_primary_keys(con)
    con.execute(schema_ddl())
    # site_saq: columns from rules/saq_fields.csv; converts the long table of earlier versions
    saq_table.ensure(con)


def _migrate_countries_table(con: duckdb.DuckDBPyConnection) -> None:
    """Warehouses from before per-edition countries had one shared `countries` table, which
    every edition's refresh replaced; it is now the view over `edition_countries`. Keep the
    old rows as the universe of every edition already built, then drop the table."""
    kind = con.sql("select table_type from information_schema.tables where table_name = 'countries' "
                   "and table_schema = current_schema()").fetchall()
    if not kind or kind[0][0] != "BASE TABLE":
        return
    con.execute("begin transaction")
    con.execute(WAREHOUSE["edition_countries"].ddl())
    if con.sql("select count(*) from information_schema.tables where table_name = 'country_topic_risk' "
               "and table_schema = current_schema()").fetchall()[0][0]:
        con.execute("""insert into edition_countries by name
            select e.edition, c.*, 'migrated from the shared countries table' as m49_vintage
            from countries as c
            cross join (select distinct edition from country_topic_risk) as e""")
    con.execute("drop table countries")
    con.execute("commit")


def _drop_retired_primary_keys(con: duckdb.DuckDBPyConnection) -> None:
    """A table declared without the primary key index it once had (no key, or `key_indexed=False`)
    is rebuilt without it. DuckDB has no ALTER TABLE ... DROP CONSTRAINT, and CREATE TABLE IF NOT
    EXISTS would keep the old index: the rows are copied into the table as now declared, in one
    transaction. Why indexes are retired: DuckDB's index turned deleting and re-inserting the rows
    of rescored sites into the main cost of scoring them (site_remediation: 11 s to delete 50k
    sites' rows, bench/README.md)."""
    keyed = {r[0] for r in con.sql(
        "select table_name from duckdb_constraints() where constraint_type = 'PRIMARY KEY' "
        "and database_name = current_database() and schema_name = current_schema()").fetchall()}
    for table in WAREHOUSE.values():
        if table.name not in keyed or (table.primary_key and table.key_indexed) or table.view_sql is not None:
            continue
        tmp = f"{table.name}__without_key"
        old = set(table_columns(con, table.name))
        cols = ", ".join(c for c in table.column_names if c in old)

        def rebuild(c, table=table, tmp=tmp, cols=cols):
            c.execute(f"drop table if exists {tmp}")
            c.execute(table.ddl(qualified=tmp, if_not_exists=False))
            c.execute(f"insert into {tmp} ({cols}) select {cols} from {table.name}")
            c.execute(f"drop table {table.name}")
            c.execute(f"alter table {tmp} rename to {table.name}")
        in_transaction(con, rebuild, f"dropping the retired primary key of {table.name}")


def connect(path: Path | str, *, read_only: bool = False, wait_seconds: float | None = None,
            log=None) -> duckdb.DuckDBPyConnection:
    """Open the warehouse. While another process holds the write lock (a refresh or scoring
    run can hold it for minutes), wait — saying so once — up to `wait_seconds` (default
    RADAR_LOCK_WAIT, 3600 s), then fail with a message naming the file.
    A DuckLake target (`ducklake:...`, see radar_pipeline/platform/lake.py) opens the lake instead:
    no file lock to wait for, its writers and readers run side by side."""
    if lake.is_lake(path):
        con = lake.connect(path, read_only=read_only)
        key = lake.instance_key(path, read_only)
        if not read_only and key not in lake.READY:
            ensure_schema(con)  # once per process and lake: the tables are not dropped under us
            lake.READY.add(key)
        return con
    path = Path(path)
    held = _HELD.get(_held_key(path))
    if held is not None:
        return held.connect(wait_seconds=wait_seconds, log=log)
    return _open(path, read_only=read_only, wait_seconds=wait_seconds, log=log)


def _open(path: Path, *, read_only: bool, wait_seconds: float | None, log) -> duckdb.DuckDBPyConnection:
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    wait = float(os.environ.get("RADAR_LOCK_WAIT", "3600")) if wait_seconds is None else wait_seconds
    deadline = time.monotonic() + wait
    told = False
    delay = 0.25
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:  # lock held by another process
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() + delay > deadline:
                raise duckdb.IOException(f"the warehouse {path} is still locked by another process after "
                                         f"{wait:.0f} s (RADAR_LOCK_WAIT): {exc}") from exc
            if not told and delay >= 2:
                (log or (lambda m: print(m, file=sys.stderr)))(
                    f"waiting for the warehouse {path}: another process holds its write lock (a refresh, "
                    f"an ingest or a scoring run); waiting up to {wait:.0f} s (RADAR_LOCK_WAIT)")
                told = True
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    if not read_only and not _schema_known(path):
        ensure_schema(con)
    return con


# --- the database held open for a run --------------------------------------------------------------
#
# Opening the warehouse file costs 25-60 ms (a DuckDB instance: its built-in catalog, the file's
# catalog) and closing it after a write as much again (the checkpoint): a refresh opened it 36
# times, ~2.5 s of a 13-s refresh of the sample. While a Dagster run's resource is set up
# (DuckDBWarehouse.setup_for_execution -> hold), the first connection keeps one extra connection
# to the file open; DuckDB then hands every later `duckdb.connect(path)` of this process the same
# instance (7 ms) and checkpoints once.
#
# It is released as soon as nothing of the run has used the file for IDLE_S: between two steps of
# a run the next connection comes within ~50 ms, but a run that waits (for a duckdb_write pool
# slot another run's step holds, while that step waits for this file's lock) or a step that
# parses or downloads for a while must not keep other processes (sensors, `radar` readers,
# another run) out of the file. A connection asked for read-only while the run holds the file is
# opened read-write (DuckDB refuses two configurations of one file in a process): it is the run's
# own code. Another DuckDB instance attaching the file (publish's build) calls release() first.
IDLE_S = 0.5


def _held_key(path: Path) -> str:
    return str(path.resolve())


class _Held:
    def __init__(self, path: Path):
        import threading

        self.path, self.runs = path, 1
        self.anchor: duckdb.DuckDBPyConnection | None = None
        self.last_used = time.monotonic()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.watcher = threading.Thread(target=self._watch, name=f"radar-warehouse-idle-{path.name}", daemon=True)
        self.watcher.start()

    def connect(self, *, wait_seconds: float | None, log) -> duckdb.DuckDBPyConnection:
        with self.lock:  # the watcher releases under this lock too: not while the file is opened
            if self.anchor is None:
                self.anchor = _open(self.path, read_only=False, wait_seconds=wait_seconds, log=log)
            con = duckdb.connect(str(self.path))  # the held instance: no catalog read, no checkpoint
            self.last_used = time.monotonic()
            return con

    def touch(self) -> None:
        self.last_used = time.monotonic()

    def release(self) -> None:
        """Close the held connection now (the instance closes, checkpointed, once the run's own
        connections are closed too)."""
        with self.lock:
            if self.anchor is not None:
                anchor, self.anchor = self.anchor, None
                anchor.close()
                closed_with_schema(self.path)

    def _watch(self) -> None:
        while not self.stop.wait(IDLE_S / 5):
            if self.anchor is not None and time.monotonic() - self.last_used > IDLE_S:
                self.release()


_HELD: dict[str, _Held] = {}


def _held_for(path: Path | str) -> _Held | None:
    return None if lake.is_lake(path) else _HELD.get(_held_key(Path(path)))


def hold(path: Path | str) -> None:
    """Keep the warehouse file open between the connections of a run (see above); a DuckLake
    target is not held (no file lock, lake.connect keeps its own sessions)."""
    if lake.is_lake(path):
        return
    held = _held_for(path)
    if held is not None:
        held.runs += 1
    else:
        _HELD[_held_key(Path(path))] = _Held(Path(path))


def unhold(path: Path | str) -> None:
    """The run is over: release the file (after its last hold)."""
    held = _held_for(path)
    if held is None:
        return
    held.runs -= 1
    if held.runs <= 0:
        del _HELD[_held_key(Path(path))]
        held.stop.set()
        held.watcher.join()
        held.release()


def release(path: Path | str) -> None:
    """Before another DuckDB instance of this process attaches the file: close the held connection."""
    held = _held_for(path)
    if held is not None:
        held.release()


def used(path: Path | str) -> None:
    """A connection of the run to the file was closed just now: it counts as use (idle from now)."""
    held = _held_for(path)
    if held is not None:
        held.touch()


# file -> its state (main file and WAL: inode, size, mtime; the SAQ question list) when this
# process last closed a connection it had opened: the schema was complete then. A refresh opens
# the warehouse ~70 times; re-running the DDL each time cost ~22 ms, 1.5 s a refresh. Any change
# made by someone else (another process, a copy over the file, a rules edit adding a question)
# changes the state, and the DDL runs again.
_SCHEMA_KNOWN: dict[str, tuple] = {}


def _file_state(path: Path) -> tuple | None:
    try:
        main = path.stat()
    except OSError:
        return None
    try:
        wal = path.with_name(path.name + ".wal").stat()
        wal_state = (wal.st_ino, wal.st_size, wal.st_mtime_ns)
    except OSError:
        wal_state = None
    questions = settings.rules_dir() / "saq_fields.csv"
    try:
        q = questions.stat()
        rules_state = (str(questions), q.st_size, q.st_mtime_ns)
    except OSError:
        rules_state = None
    return (main.st_dev, main.st_ino, main.st_size, main.st_mtime_ns, wal_state, rules_state)


def _schema_known(path: Path) -> bool:
    key = str(path.resolve())
    return key in _SCHEMA_KNOWN and _SCHEMA_KNOWN[key] == _file_state(path)


def closed_with_schema(path: Path | str) -> None:
    """Record the state of a warehouse file this process just closed after opening it for writing
    (its schema complete): the next `connect` skips the DDL while the file stays as it is."""
    if not lake.is_lake(path):
        path = Path(path)
        state = _file_state(path)
        if state is not None:
            _SCHEMA_KNOWN[str(path.resolve())] = state


def exists(target: Path | str) -> bool:
    """Whether the warehouse is there to read: the file exists, or it is a lake (its catalog
    server answers on connect)."""
    return lake.is_lake(target) or Path(target).exists()


def attach_read_only(con: duckdb.DuckDBPyConnection, target: Path | str, alias: str) -> None:
    """Attach the warehouse (file or lake) read-only to another DuckDB session as `alias`."""
    if lake.is_lake(target):
        lake.attach(con, target, alias, read_only=True)
    else:
        con.execute(f"attach '{Path(target).as_posix().replace(chr(39), chr(39) * 2)}' as {alias} (read_only)")


def rollback(con: duckdb.DuckDBPyConnection, original: BaseException) -> None:
    """Roll back after `original`; a failing rollback (the connection is often unusable after
    disk full) is added as a note to `original` instead of replacing it, so the user still
    reads "No space left on device" rather than a rollback error."""
    try:
        con.execute("rollback")
    except Exception as exc:  # noqa: BLE001 — the original error is the one to report
        original.add_note(f"(the rollback after it failed too: {type(exc).__name__}: {exc})")


def replace_slice(con: duckdb.DuckDBPyConnection, table: str, rows: pl.DataFrame | str,
                  where: dict[str, object], params: dict[str, object] | None = None) -> int:
    """Delete rows matching `where` then insert `rows` (a DataFrame or a SELECT), atomically.

    Column order follows the target table; `rows` must carry every column.
    Returns the number of rows inserted.
    """
    return replace_slices(con, [(table, rows, where)], params)[0]


def replace_slices(con: duckdb.DuckDBPyConnection,
                   slices: list[tuple[str, pl.DataFrame | str, dict[str, object]]],
                   params: dict[str, object] | None = None) -> list[int]:
    """replace_slice for several (table, rows, where) slices in ONE transaction: what one asset
    writes (a source's observations, files, notes and vintages) lands together or not at all,
    and on a lake it is one commit (one snapshot, one set of catalog writes) instead of one per
    table. Returns the rows inserted per slice."""
    prepared = [(table, rows, where, " and ".join(f"{k} = ${k}" for k in where) or "true")
                for table, rows, where in slices]

    def body(c):
        return [_replace_slice_body(c, table, table_columns(c, table), rows, where, cond, params)
                for table, rows, where, cond in prepared]
    if is_lake_connection(con):
        # a lake commit can lose a race with another writer (two editions' refreshes both
        # replacing a shared table): the slice replace is rerun on the newer snapshot
        def named(c):
            what = ", ".join(f"{t} where {w or 'all rows'}" for t, _r, w, _c in prepared)
            lake_commits.commit_message(c, "replace " + what, tables=[t for t, *_ in prepared],
                                        **prepared[0][2])
            return body(c)
        # writers of the same table queue (lake_commits.table_locks) rather than conflict and redo
        with lake_commits.table_locks(con, [t for t, *_ in prepared]):
            return lake_commits.run_transaction(con, named)
    return in_transaction(con, body)


# Column order of a lake's tables per (lake instance, table): the lake's tables are created by
# this code from the declared DDL and never altered at run time, and information_schema on a
# lake costs a catalog round trip per call (61 calls per edition refresh before this cache).
# A DuckDB file is asked every time (cheap, and an old file may predate a column).
_LAKE_COLUMNS: dict[tuple, list[str]] = {}


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    key = lake.session_key(con)
    cached = _LAKE_COLUMNS.get((key, table)) if key is not None else None
    if cached is not None:
        return cached
    try:
        # the relation's columns: no query (information_schema cost ~4 ms a call, ~100 calls a refresh)
        cols = list(con.table(table).columns)
    except duckdb.CatalogException:
        cols = []
    if key is not None and cols:
        _LAKE_COLUMNS[(key, table)] = cols
    return cols


def in_transaction(con: duckdb.DuckDBPyConnection, body, message: str | None = None):
    """Run `body(con)` between begin and commit (rolled back on error). On a lake a commit that
    lost a race with another writer is retried: `body` must be rerunnable (delete-then-insert)."""
    if is_lake_connection(con):
        def named(c):
            if message:
                lake_commits.commit_message(c, message)
            return body(c)
        return lake_commits.run_transaction(con, named)
    con.execute("begin transaction")
    try:
        out = body(con)
        con.execute("commit")
    except BaseException as exc:
        rollback(con, exc)
        raise
    return out


def replace_all(con: duckdb.DuckDBPyConnection, table: str, rows: pl.DataFrame | str,
                params: dict[str, object] | None = None) -> int:
    """Replace every row of `table` (a rule or reference table) atomically; see replace_slice."""
    return replace_slice(con, table, rows, {}, params)


def replace_table_unless_same(con: duckdb.DuckDBPyConnection, table: str, rows: pl.DataFrame) -> bool:
    """Replace every row of a reference table (isic, sector_weights, ...) with `rows` unless it
    already holds exactly these rows (as a multiset); returns whether it wrote. Every edition's
    refresh rebuilds these tables from the same rule files: two refreshes side by side on a lake
    both deleting the same data file is a write conflict (one reruns after a back-off), and a
    rewrite of identical rows is a snapshot and Parquet file for nothing. The comparison runs
    inside the transaction, so a rerun after a conflict sees the other writer's rows and stops."""
    columns = table_columns(con, table)
    cols = ", ".join(f'"{c}"' for c in columns)
    comparable = set(columns) <= set(rows.columns)  # else columns left to their default: write

    def body(c):
        c.register("_replace_table_rows", rows)
        try:
            differ = not comparable or c.sql(f"""select exists (select {cols} from {table} except all
                                              select {cols} from _replace_table_rows)
                                   or exists (select {cols} from _replace_table_rows except all
                                              select {cols} from {table})""").fetchall()[0][0]
            if differ:
                c.execute(f"delete from {table}")
                c.execute(f"insert into {table} by name select * from _replace_table_rows")
            return bool(differ)
        finally:
            c.unregister("_replace_table_rows")
    with lake_commits.table_locks(con, [table]):
        return in_transaction(con, body, f"replace {table}")


def _replace_slice_body(con, table, cols, rows, where, cond, params) -> int:
    import polars as pl

    con.execute(f"delete from {table} where {cond}", where or None)
    if isinstance(rows, pl.DataFrame):
        missing = [c for c in cols if c not in rows.columns]
        if missing:
            raise ValueError(f"rows for {table} lack columns {missing}")
        staged = rows.select(cols)  # noqa: F841 — referenced by name in the SQL below
        # the INSERT's own row count: a count(*) of the slice afterwards cost the lake a scan
        return con.execute(f"insert into {table} select * from staged").fetchall()[0][0]
    return con.execute(f"insert into {table} ({', '.join(cols)}) select {', '.join(cols)} from ({rows})",
                       {**(params or {})}).fetchall()[0][0]


def sql_literal(value: object) -> str:
    """`value` as a SQL literal. For the few statements of a process that would otherwise bind a
    Python value: binding one makes duckdb 1.5 import pandas, numpy and pyarrow (~85 MiB, ~0.5 s)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _resource_module():
    from radar_pipeline.platform import warehouse_resource  # dagster: not for `radar score`'s import

    return warehouse_resource


# The Dagster resource and the Dagster column schemas live in warehouse_resource.py: importing
# dagster costs ~0.7 s, which `radar score` and the scoring engine (this module's connect and
# write patterns, no Dagster) should not pay. `from ...warehouse import DuckDBWarehouse` still works.
__getattr__ = lazy_attributes(
    __name__,
    DuckDBWarehouse=lambda: _resource_module().DuckDBWarehouse,
    table_schema_metadata=lambda: _resource_module().table_schema_metadata,
    declared_table_schema=lambda: _resource_module().declared_table_schema,
)
