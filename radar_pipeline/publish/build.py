"""Build the BI-facing snapshot: a separate DuckDB file plus Parquet, replaced atomically.

Layout (RADAR_PUBLISHED = data/published/radar.duckdb):

    data/published/radar.duckdb                 the snapshot BI tools open read-only
    data/published/parquet/<table>.parquet      symlink `parquet` -> .snapshots/all/<id>/parquet
    data/published/buyers/<name>.duckdb         only that buyer's sites (+ the public country tables)
    data/published/buyers/<name>/parquet/       symlink -> ../../.snapshots/buyer-<name>/<snapshot>/parquet

<name> is the buyer id itself for ordinary ids (lowercase letters, digits, `-`, `_`), an
escaped form for the others (publish/buyers.py, `buyer_file_name`): one name per buyer,
whatever the case-sensitivity of the file system, and always short enough for a file name.

How a snapshot is swapped in: every file is built under a temporary name in
the same folder, closed (checkpointed), and then `os.replace`d over the old
one — an atomic rename on POSIX. The pipeline never opens the published file
for writing, so a BI reader holding it never blocks a run, and a reader never
sees a half-written file:

* a connection opened before the swap keeps the old inode, and answers from
  the old snapshot until it is closed (checked in radar_pipeline_tests/test_publish.py);
* a connection opened after the swap (by another process) sees the new one.
  Within ONE process DuckDB caches open databases by path: as long as any
  connection of that process to the old file is open, new connections of the
  same process get the old snapshot too. BI servers should therefore not keep
  connections forever (SQLAlchemy `pool_recycle` / NullPool).

The Parquet folder is swapped the same way, through a symlink replaced with
`os.replace`; the previous snapshot's folder is kept until the next publish so
a reader in the middle of a query can finish.

Nothing is written or deleted outside the published folder: every path below it goes through
radar_pipeline/platform/safe_paths.py (no symlink followed, except that the `parquet` links publish
makes are replaced or removed as links), and every target is checked before the first file is
built and again before the first one is swapped, so a planted link fails the publish with the
old snapshot whole.
"""
from __future__ import annotations

import logging
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from radar_pipeline.metadata import PUBLISHED
from radar_pipeline.platform import lake, settings
from radar_pipeline.platform import warehouse as warehouse_module
from radar_pipeline.platform.safe_paths import checked, make_dirs, remove_leftover
from radar_pipeline.platform.warehouse import ensure_schema, rollback
from radar_pipeline.publish import files, state
from radar_pipeline.publish.buyers import buyer_file_name
from radar_pipeline.publish.tables import ALL_TABLES, PUBLIC_TABLES, SITE_TABLES, SQL_TABLES, publish_sql, quoted
from radar_pipeline.rules import rule_sql, staleness

if TYPE_CHECKING:
    import pandera.polars as pa
    import polars as pl

logger = logging.getLogger(__name__)
VALIDATE_MAX_ROWS = 1_000_000  # larger tables are validated on a block sample of about this size
VALIDATE_BATCH_ROWS = 200_000  # rows per pandera pass (bounded memory at 1M sites)


def default_keep_snapshots() -> int:
    """How many Parquet snapshots per scope publish keeps (a reader mid-query finishes on the
    previous one): RADAR_KEEP_SNAPSHOTS, default 2."""
    return max(1, int(os.environ.get("RADAR_KEEP_SNAPSHOTS", "2")))


# the two tables publish writes itself (the others are CREATE TABLE AS sql/publish/*.sql)
DICTIONARY_DDL = PUBLISHED["data_dictionary"].ddl(keys=False, if_not_exists=False,
                                                  qualified="{db}.main.data_dictionary")
PUBLISH_INFO_DDL = PUBLISHED["publish_info"].ddl(keys=False, if_not_exists=False, qualified="{db}.main.publish_info")


class PublishError(RuntimeError):
    pass


@dataclass
class PublishResult:
    snapshot_id: str
    path: Path
    row_counts: dict[str, int]
    buyers: dict[str, dict[str, int]] = field(default_factory=dict)  # buyer_id -> table -> rows
    removed_buyers: list[str] = field(default_factory=list)


def new_snapshot_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def build_sql_tables(con: duckdb.DuckDBPyConnection, db: str) -> None:
    """Create every sql/publish table in database `db`, reading the warehouse tables of the
    current default database (the caller runs `use <warehouse>` first)."""
    rule_sql.install(con)  # topics, round_score (temp: the warehouse stays read-only)
    staleness.install(con)  # current_versions, stale_rows: edition_status.sql reads them
    for name in SQL_TABLES:
        con.execute(f"create table {db}.main.{name} as {publish_sql(name)}")
        if name == "site_scores_history":
            # site_scores_latest.sql picks each site's latest row of the history just built
            # (the warehouse has no table of that name, so the view shadows nothing).
            con.execute(f"create or replace temp view site_scores_history as "
                        f"select * from {db}.main.site_scores_history")
    con.execute("drop view if exists temp.site_scores_history")


def dictionary_rows(con: duckdb.DuckDBPyConnection, db: str) -> pl.DataFrame:
    """One row per table x column of database `db`: types from information_schema, the rest
    from the declarations in radar_pipeline/metadata/published.py. Fails on an undocumented or
    missing column."""
    import polars as pl

    types = con.sql("select table_name, column_name, ordinal_position, data_type "
                    "from information_schema.columns where table_catalog = $db and table_schema = 'main' "
                    "order by table_name, ordinal_position", params={"db": db}).pl()
    rows, problems = [], []
    for table, declared in PUBLISHED.items():
        cols = types.filter(pl.col("table_name") == table)
        if cols.is_empty():
            problems.append(f"{table}: not built")
            continue
        table_rows, table_problems = declared.dictionary_rows(
            cols.select("column_name", "ordinal_position", "data_type").rows())
        rows += table_rows
        problems += table_problems
    if problems:
        raise PublishError("published tables do not match their schemas: " + "; ".join(problems))
    return pl.DataFrame(rows, schema={"table_name": pl.Utf8, "table_description": pl.Utf8,
                                      "ordinal_position": pl.Int32, "column_name": pl.Utf8,
                                      "data_type": pl.Utf8, "nullable": pl.Boolean, "description": pl.Utf8})


def _finish(con: duckdb.DuckDBPyConnection, db: str, *, dictionary: pl.DataFrame | None, snapshot_id: str,
            scope: str, published_at: datetime, source: str) -> dict[str, int]:
    """Write data_dictionary (built from `db` when None) and publish_info into `db`;
    returns row counts per table."""
    import polars as pl

    con.execute(DICTIONARY_DDL.format(db=db))
    con.execute(PUBLISH_INFO_DDL.format(db=db))
    if dictionary is None:
        dictionary = dictionary_rows(con, db)
    con.register("_dictionary", dictionary)
    con.execute(f"insert into {db}.main.data_dictionary by name select * from _dictionary")
    con.unregister("_dictionary")
    _comment(con, db, dictionary)
    counts = {t: con.sql(f"select count(*) from {db}.main.{t}").fetchall()[0][0] for t in ALL_TABLES
              if t != "publish_info"}
    counts["publish_info"] = len(counts) + 1
    info = pl.DataFrame({"snapshot_id": snapshot_id, "scope": scope, "published_at": published_at,
                         "source_warehouse": source, "table_name": list(counts),
                         "row_count": list(counts.values())},
                        schema={"snapshot_id": pl.Utf8, "scope": pl.Utf8, "published_at": pl.Datetime("us"),
                                "source_warehouse": pl.Utf8, "table_name": pl.Utf8, "row_count": pl.Int64})
    con.register("_info", info)
    con.execute(f"insert into {db}.main.publish_info by name select * from _info")
    con.unregister("_info")
    return counts


def _comment(con: duckdb.DuckDBPyConnection, db: str, dictionary: pl.DataFrame) -> None:
    """COMMENT ON every table and column from the data dictionary, so BI tools that show
    catalog comments (DBeaver, Superset, SQLAlchemy inspect) show the documentation too.
    One transaction: ~330 statements each committed on their own were one WAL write each."""
    tables = dictionary.unique("table_name", keep="first", maintain_order=True)
    con.execute("begin transaction")
    try:
        for r in tables.iter_rows(named=True):
            if r["table_description"]:
                con.execute(f"comment on table {db}.main.{r['table_name']} is {quoted(r['table_description'])}")
        for r in dictionary.iter_rows(named=True):
            if r["description"]:
                con.execute(f'comment on column {db}.main.{r["table_name"]}."{r["column_name"]}" '
                            f"is {quoted(r['description'])}")
        con.execute("commit")
    except BaseException as exc:
        rollback(con, exc)
        raise


def _unique_keys(schema: pa.DataFrameSchema) -> list[list[str]]:
    """The schema's unique columns (one key each) and its unique key, if any."""
    keys = [[c] for c, col in schema.columns.items() if col.unique]
    if schema.unique:
        keys.append(list(schema.unique))
    return keys


def _duplicates(con: duckdb.DuckDBPyConnection, db: str, table: str, schema: pa.DataFrameSchema) -> list[str]:
    """Unique columns and the unique key, checked in SQL over the WHOLE table (the pandera pass
    below sees batches of a sample, so it cannot see a duplicate in two batches)."""
    problems = []
    for key in _unique_keys(schema):
        cols = ", ".join(f'"{c}"' for c in key)
        n = con.sql(f"select count(*) from (select {cols} from {db}.main.{table} "
                    f"group by all having count(*) > 1)").fetchall()[0][0]
        if n:
            problems.append(f"{table}: {n} value(s) of ({', '.join(key)}) appear more than once")
    return problems


def validate(con: duckdb.DuckDBPyConnection, db: str, counts: dict[str, int]) -> None:
    """pandera-validate every published table, in batches of VALIDATE_BATCH_ROWS so memory stays
    bounded whatever the number of sites (tables over VALIDATE_MAX_ROWS on a block sample);
    uniqueness is checked in SQL over the whole table."""
    # pandera (and pandas under it) on first publish, not in every process that imports the
    # definitions (~0.5 s, issue 24 item 3)
    import pandera.polars as pa
    import polars as pl

    from radar_pipeline.publish import schemas

    problems = []
    for table, schema in schemas.SCHEMAS.items():
        n = counts.get(table, 0)
        problems += _duplicates(con, db, table, schema)
        batch_schema = schema
        if _unique_keys(schema):
            # uniqueness was checked above on the whole table; per batch it would only repeat it
            batch_schema = schema.update_columns({c: {"unique": False} for c, col in schema.columns.items()
                                                  if col.unique})
            batch_schema.unique = None
        sample = (f" using sample {100 * VALIDATE_MAX_ROWS / n:.4f}% (system, 42)"
                  if n > VALIDATE_MAX_ROWS else "")
        rel = con.sql(f"select * from {db}.main.{table}{sample}")
        # an empty table still gets its dtype checks (one empty batch)
        batches = rel.to_arrow_reader(VALIDATE_BATCH_ROWS) if n else [rel.limit(0).to_arrow_table()]
        for batch in batches:
            try:
                batch_schema.validate(pl.from_arrow(batch), lazy=True)
            except pa.errors.SchemaErrors as exc:
                cases = exc.failure_cases.head(5)
                problems.append(f"{table}: " + "; ".join(
                    f"{r.get('column')} {r.get('check')} failed for {r.get('failure_case')}"
                    for r in cases.iter_rows(named=True)))
                break  # the first failing batch names the problem; the rest would repeat it
    if problems:
        raise PublishError("published tables failed validation: " + " | ".join(problems))


def publish(warehouse: Path | str, published: Path | str | None = None, *, log=print,
            keep_snapshots: int | None = None, lake_snapshot: int | None = None) -> PublishResult:
    """Build a new snapshot of the published file (+ Parquet, + one file per buyer) from the
    warehouse and swap it in atomically. The warehouse is only read. Parquet snapshot folders
    beyond the newest `keep_snapshots` (default RADAR_KEEP_SNAPSHOTS, 2) are removed.

    A DuckLake warehouse is read as of `lake_snapshot` (the snapshot `radar publish` tagged, so
    every table comes from that one state while writers go on) and gets the Parquet export and
    the buyer files, but no copy of the main file: BI tools read the lake itself."""
    n_keep = default_keep_snapshots() if keep_snapshots is None else keep_snapshots
    on_lake = lake.is_lake(warehouse)
    if on_lake and lake_snapshot is None:
        raise PublishError("publishing a DuckLake warehouse needs the snapshot id to export "
                           "(lake_commits.publish tags it)")
    source = (f"{lake.parse(warehouse).display()} snapshot {lake_snapshot}" if on_lake
              else str(Path(warehouse).resolve()))
    warehouse = warehouse if on_lake else Path(warehouse).resolve()
    published = Path(published or settings.published_path()).absolute()
    out = published.parent  # the root nothing is written or deleted outside of (safe_paths)
    snapshot_id = new_snapshot_id()
    published_at = datetime.now(UTC).replace(tzinfo=None)
    snapshots = out / ".snapshots"
    buyers_dir = out / "buyers"
    files.check_targets(out, [published, snapshots / "all", buyers_dir], [out / "parquet"])
    files.remove_orphans(out, log=log)
    make_dirs(out, out)
    # bounded memory whatever the number of sites: spill to a folder beside the output (same
    # disk, removed at the end) rather than DuckDB's default of 80 % of RAM
    spill = Path(tempfile.mkdtemp(prefix=f".spill.{os.getpid()}.", dir=checked(out, out)))
    try:
        con = duckdb.connect(config={"memory_limit": settings.memory_limit(), "temp_directory": str(spill)})
    except BaseException:
        remove_leftover(out, spill, log=log)
        raise
    staged: list[tuple[Path, Path]] = []  # (temp file, target) renamed at the end
    transient: list[Path] = []  # temp files removed at the end (the main file of a lake publish)
    parquet_links: list[tuple[Path, Path]] = []
    made: list[Path] = []  # this snapshot's Parquet folders, removed if the publish fails
    try:
        if on_lake:
            lake.attach(con, warehouse, "wh", snapshot=lake_snapshot)
        else:
            # this process's run may hold the file open (warehouse.hold): DuckDB refuses a second
            # instance of one file in a process
            warehouse_module.release(warehouse)
            con.execute(f"attach {quoted(warehouse)} as wh (read_only)")
        con.execute("use wh")
        marker = state.warehouse_marker(con, "wh")  # recorded once this snapshot is swapped in
        result = PublishResult(snapshot_id, published, {})
        has_buyers = con.sql("select count(*) from information_schema.tables where table_catalog = 'wh' "
                             "and table_name = 'buyer_sites'").fetchall()[0][0]
        buyers = [r[0] for r in con.sql("select distinct buyer_id from wh.main.buyer_sites order by 1")
                  .fetchall()] if has_buyers else []
        # buyer_file_name refuses an invalid id (`..`) before any path is built from it
        names = {buyer_id: buyer_file_name(buyer_id) for buyer_id in buyers}
        files.check_targets(out, [p for n in names.values() for p in (buyers_dir / f"{n}.duckdb", buyers_dir / n,
                                                                    snapshots / f"buyer-{n}")],
                       [buyers_dir / n / "parquet" for n in names.values()])

        def fill_main(db: str) -> None:
            # progress lines: a publish runs for tens of seconds (issue 23 item 7)
            log(f"publishing snapshot {snapshot_id} from {source}: building the tables")
            build_sql_tables(con, db)
            result.row_counts = _finish(con, db, dictionary=None, snapshot_id=snapshot_id,
                                        scope="all", published_at=published_at, source=source)
            log(f"validating {len(result.row_counts)} tables ({sum(result.row_counts.values())} rows)")
            validate(con, db, result.row_counts)
            made.append(snapshots / "all" / snapshot_id)
            log("exporting them to Parquet")
            files.export_parquet(con, db, out, snapshots / "all" / snapshot_id / "parquet")

        main_tmp = files.build_file(con, out, published, snapshot_id, "pub", fill_main)
        if on_lake:
            transient.append(main_tmp)  # the buyer files are cut from it, then it goes
        else:
            staged.append((main_tmp, published))
        parquet_links.append((out / "parquet", snapshots / "all" / snapshot_id / "parquet"))
        log(f"published snapshot {snapshot_id}: " + ", ".join(f"{t}={n}" for t, n in result.row_counts.items()))

        # Buyers: built from the new snapshot (attached read-only from its temp file) + buyer_sites.
        if buyers:
            con.execute(f"attach {quoted(main_tmp)} as pubsrc (read_only)")
            dictionary = con.sql("select * from pubsrc.main.data_dictionary").pl()
        for i, (buyer_id, name) in enumerate(names.items(), 1):
            if i == 1 or i == len(names) or i % max(1, len(names) // 10) == 0:
                log(f"buyer file {i} of {len(names)}: {name}.duckdb")

            def fill_buyer(db: str, buyer_id: str = buyer_id, name: str = name) -> None:
                for table in PUBLIC_TABLES:
                    con.execute(f"create table {db}.main.{table} as select * from pubsrc.main.{table}")
                for table in SITE_TABLES:
                    con.execute(f"create table {db}.main.{table} as select * from pubsrc.main.{table} "
                                f"where site_id in (select site_id from wh.main.buyer_sites "
                                f"where buyer_id = $b)", {"b": buyer_id})
                counts = _finish(con, db, dictionary=dictionary, snapshot_id=snapshot_id,
                                 scope=f"buyer:{buyer_id}", published_at=published_at, source=source)
                result.buyers[buyer_id] = counts
                made.append(snapshots / f"buyer-{name}" / snapshot_id)
                files.export_parquet(con, db, out, snapshots / f"buyer-{name}" / snapshot_id / "parquet")

            target = buyers_dir / f"{name}.duckdb"
            staged.append((files.build_file(con, out, target, snapshot_id, "buyer", fill_buyer), target))
            parquet_links.append((buyers_dir / name / "parquet", snapshots / f"buyer-{name}" / snapshot_id / "parquet"))
        if buyers:
            con.execute("detach pubsrc")
        # again, for links planted while the files were built: a refusal now still leaves the
        # old snapshot whole (nothing is swapped yet)
        files.check_targets(out, [t for _, t in staged] + [link.parent for link, _ in parquet_links],
                       [link for link, _ in parquet_links])
    except BaseException:
        for tmp in [*(t for t, _ in staged), *transient, *made]:
            remove_leftover(out, tmp, log=log)
        raise
    finally:
        con.close()
        remove_leftover(out, spill, log=log)
    for tmp in transient:
        remove_leftover(out, tmp, log=log)

    # Swap: each file is one atomic rename; readers see the old or the new file, never a mix.
    for tmp, target in staged:
        os.replace(tmp, checked(out, target))
    for link, target in parquet_links:
        files.swap_symlink(out, link, target)
        # target = .snapshots/<scope>/<snapshot_id>/parquet: prune the scope's snapshot folders
        files.prune(out, target.parent.parent, keep=snapshot_id, n_keep=n_keep, log=log)
    result.removed_buyers = files.remove_unlisted_buyers(out, set(names.values()), log)
    state.write_state(out, {"warehouse": state.warehouse_name(warehouse), "marker": marker, "snapshot_id": snapshot_id})
    return result


def empty_dictionary() -> pl.DataFrame:
    """The data dictionary built on an empty warehouse (types do not depend on the data)."""
    con = duckdb.connect()
    try:
        ensure_schema(con)
        con.execute("attach ':memory:' as pub")
        build_sql_tables(con, "pub")
        con.execute(DICTIONARY_DDL.format(db="pub"))
        con.execute(PUBLISH_INFO_DDL.format(db="pub"))
        return dictionary_rows(con, "pub")
    finally:
        con.close()
