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
radar_pipeline/safe_paths.py (no symlink followed, except that the `parquet` links publish
makes are replaced or removed as links), and every target is checked before the first file is
built and again before the first one is swapped, so a planted link fails the publish with the
old snapshot whole.
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandera.polars as pa
import polars as pl

from radar_pipeline import lake, rule_sql, settings, staleness
from radar_pipeline.identifiers import is_id
from radar_pipeline.metadata import PUBLISHED
from radar_pipeline.processes import remove_left_by_dead
from radar_pipeline.publish import schemas
from radar_pipeline.publish.buyers import buyer_file_name, buyer_id_of
from radar_pipeline.safe_paths import UnsafePathError, checked, make_dirs, remove, remove_leftover
from radar_pipeline.warehouse import connect, ensure_schema

logger = logging.getLogger(__name__)
PUBLISH_SQL_DIR = settings.SQL_DIR / "publish"
# Built from sql/publish/<name>.sql, in this order.
SQL_TABLES = ("countries", "country_risk", "country_risk_wide", "inherent_risk", "inherent_risk_overall",
              "edition_sources", "edition_status", "coverage_report", "country_picture", "benchmark_agreement",
              "benchmark_disagreements", "country_topic_uncertainty", "site_scores_history",
              "site_scores_latest", "site_score_factors", "site_remediation", "site_uncertainty",
              "site_nonconformities", "site_rejects")
# Tables with one row per site (or site line): a buyer's file keeps only its own sites' rows.
SITE_TABLES = ("site_scores_latest", "site_scores_history", "site_score_factors", "site_remediation",
               "site_uncertainty", "site_nonconformities", "site_rejects")
PUBLIC_TABLES = tuple(t for t in SQL_TABLES if t not in SITE_TABLES)
ALL_TABLES = (*SQL_TABLES, "data_dictionary", "publish_info")
VALIDATE_MAX_ROWS = 1_000_000  # larger tables are validated on a block sample of about this size
VALIDATE_BATCH_ROWS = 200_000  # rows per pandera pass (bounded memory at 1M sites)
# Storage format of every published file. DuckDB 2.0 writes v2.0.0 by default, which DuckDB 1.x
# (what most BI drivers bundle: DBeaver, Metabase, Superset's duckdb-engine installs) refuses to
# open. v1.1.0 is read by every DuckDB >= 1.1 and holds all the types the published tables use.
STORAGE_VERSION = "v1.1.0"


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


def publish_sql(name: str) -> str:
    return (PUBLISH_SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def _q(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


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
    catalog comments (DBeaver, Superset, SQLAlchemy inspect) show the documentation too."""
    tables = dictionary.unique("table_name", keep="first", maintain_order=True)
    for r in tables.iter_rows(named=True):
        if r["table_description"]:
            con.execute(f"comment on table {db}.main.{r['table_name']} is {_q(r['table_description'])}")
    for r in dictionary.iter_rows(named=True):
        if r["description"]:
            con.execute(f'comment on column {db}.main.{r["table_name"]}."{r["column_name"]}" '
                        f"is {_q(r['description'])}")


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


def _arrow_schema_blob(con: duckdb.DuckDBPyConnection, db: str, table: str, tmp: Path,
                       descriptions: dict[str, str], about: str) -> str:
    """The Arrow schema the Parquet file of `table` will have (read back from a zero-row copy
    written at `tmp`, so every type is the one the Parquet reader derives), with each column's
    description as field metadata `description`, serialized as Parquet readers expect it under
    the `ARROW:schema` key (base64 of the IPC schema message)."""
    import base64

    import pyarrow as pa_
    import pyarrow.parquet as pq

    con.execute(f"copy (select * from {db}.main.{table} limit 0) to {_q(tmp)} (format parquet)")
    try:
        schema = pq.read_schema(tmp)
    finally:
        os.remove(tmp)
    schema = pa_.schema([f.with_metadata({"description": descriptions[f.name]}) if descriptions.get(f.name) else f
                         for f in schema], metadata={"description": about} if about else None)
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def _export_parquet(con: duckdb.DuckDBPyConnection, db: str, root: Path, folder: Path) -> None:
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
        blob = _arrow_schema_blob(con, db, table, tmp, columns, about)
        con.execute(f"copy {db}.main.{table} to {_q(tmp)} (format parquet, "
                    f"kv_metadata {{'ARROW:schema': {_q(blob)}, 'description': {_q(about)}}})")
        os.replace(tmp, final)


def _swap_symlink(root: Path, link: Path, target: Path) -> None:
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


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)  # lstat: a link to a folder is not one
    except FileNotFoundError:
        return False


def _prune(root: Path, snapshots: Path, keep: str, n_keep: int, log=print) -> list[str]:
    """Keep the newest `n_keep` snapshot folders of one scope (`.snapshots/all`,
    `.snapshots/buyer-<name>`; ids sort by time), always `keep`. Returns the removed ids. A
    link among them is not one publish made: neither counted nor followed, only logged; so is
    a scope folder reached through a link (pruning is best effort: it runs after the swap)."""
    try:
        snapshots = checked(root, snapshots)
    except UnsafePathError as exc:
        log(f"snapshots not pruned: {exc}")
        return []
    if not _is_real_dir(snapshots):
        return []
    entries = sorted(snapshots.iterdir())
    for link in (p for p in entries if p.is_symlink()):
        log(f"left in place: {link} is a symlink publish did not make")
    dirs = [p for p in entries if _is_real_dir(p)]
    return [old.name for old in dirs[:-max(n_keep, 1)]
            if old.name != keep and remove_leftover(root, old, log=log)]


def _build_file(con: duckdb.DuckDBPyConnection, root: Path, target: Path, snapshot_id: str, alias: str,
                fill) -> Path:
    """Create a temp DuckDB file next to `target` (below `root`), attach it as `alias`, run
    fill(alias), detach (checkpoint). Returns the temp path; the caller renames it over `target`."""
    target = checked(root, target)
    make_dirs(root, target.parent)
    # the pid in the name lets the next publish remove what a killed one left (remove_orphans)
    tmp = checked(root, target.with_name(f".{target.name}.{snapshot_id}.{os.getpid()}.tmp"))
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        remove(root, leftover)  # a link planted at a temp name is refused, not written through
    con.execute(f"attach {_q(tmp)} as {alias} (storage_version {_q(STORAGE_VERSION)})")
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
    buyer_dirs = [p for p in (out / "buyers").iterdir() if _is_real_dir(p)] if _is_real_dir(out / "buyers") else []
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


# --- publish state: what the published snapshot was built from -------------------------------
# Written after a successful swap; `publish_due` compares it with the warehouse now, so a rerun
# after a kill between scoring and publishing (or after --no-publish) publishes even when it
# has nothing to score.
STATE_FILE = ".publish_state.json"
MARKER_HASH_ROWS = 2_000_000  # unstamped tables up to this size are hashed whole (~0.1 s per 1M rows)


def warehouse_marker(con: duckdb.DuckDBPyConnection, db: str) -> dict[str, list[str]]:
    """A cheap fingerprint of the warehouse tables publish reads (those sql/publish/*.sql names,
    and buyer_sites): per table its row count and the latest value of each timestamp column;
    tables without one (edition and reference tables) are hashed row by row up to
    MARKER_HASH_ROWS rows. The site tables are stamped by every write (updated_at, scored_at,
    received_at, resolved_at); the large unstamped ones (site_score_factors) are written in the
    same transaction as a stamped one (site_scores)."""
    text = " ".join(publish_sql(name) for name in SQL_TABLES)
    tables = [r[0] for r in con.sql("select table_name from information_schema.tables where table_catalog = $db "
                                    "and table_schema = 'main' and table_type = 'BASE TABLE' order by 1",
                                    params={"db": db}).fetchall()
              if r[0] == "buyer_sites" or re.search(rf"\b{r[0]}\b", text)]
    marker = {}
    for table in tables:
        stamps = [r[0] for r in con.sql("select column_name from information_schema.columns where table_catalog = $db "
                                        "and table_schema = 'main' and table_name = $t and data_type like 'TIMESTAMP%' "
                                        "order by ordinal_position", params={"db": db, "t": table}).fetchall()]
        name = f'{db}.main."{table}"'
        n = con.sql(f"select count(*) from {name}").fetchall()[0][0]
        hashed = not stamps and n <= MARKER_HASH_ROWS
        maxima = ", ".join([f'max("{c}")' for c in stamps] or ["null"])
        row = con.sql(f"select {maxima}, {'sum(hash(_radar_row))' if hashed else 'null'} "
                      f"from {name} as _radar_row").fetchall()[0]
        marker[table] = [str(n), *(str(v) for v in row)]
    return marker


def _warehouse_name(warehouse: Path | str) -> str:
    return lake.parse(warehouse).display() if lake.is_lake(warehouse) else str(Path(warehouse).resolve())


def _write_state(out: Path, state: dict) -> None:
    path = checked(out, out / STATE_FILE)
    tmp = checked(out, out / f".{STATE_FILE}.{os.getpid()}.tmp")  # a killed publish's: remove_orphans
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, path)


def publish_due(warehouse: Path | str, published: Path | str | None = None) -> str | None:
    """Why the published snapshot is behind `warehouse` (no published file, no record of what it
    was built from, another warehouse, tables changed since), or None when it is up to date."""
    published = Path(published or settings.published_path()).absolute()
    if not lake.is_lake(warehouse) and not published.exists():
        return f"no published file at {published}"
    try:
        state = json.loads((published.parent / STATE_FILE).read_text(encoding="utf-8"))
        built_from, then = state["warehouse"], state["marker"]
    except FileNotFoundError:
        return f"no record of what {published.parent} was published from"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its record {published.parent / STATE_FILE} is unreadable ({exc})"
    if built_from != _warehouse_name(warehouse):
        return f"it was published from {built_from}"
    con = connect(warehouse, read_only=True)
    try:
        now = warehouse_marker(con, con.sql("select current_database()").fetchall()[0][0])
    finally:
        con.close()
    changed = sorted(t for t in now.keys() | then.keys() if now.get(t) != then.get(t))
    return f"changed since it was published: {', '.join(changed)}" if changed else None


def _check_targets(out: Path, paths: Iterable[Path], links: Iterable[Path] = ()) -> None:
    """Raise (safe_paths.UnsafePathError) if any path publish will write, or link it will swap,
    is unsafe: called before anything is built and again before the first swap."""
    for path in paths:
        checked(out, path)
    for link in links:
        checked(out, link, link_ok=True)


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
    _check_targets(out, [published, snapshots / "all", buyers_dir], [out / "parquet"])
    remove_orphans(out, log=log)
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
            con.execute(f"attach {_q(warehouse)} as wh (read_only)")
        con.execute("use wh")
        marker = warehouse_marker(con, "wh")  # recorded once this snapshot is swapped in
        result = PublishResult(snapshot_id, published, {})
        has_buyers = con.sql("select count(*) from information_schema.tables where table_catalog = 'wh' "
                             "and table_name = 'buyer_sites'").fetchall()[0][0]
        buyers = [r[0] for r in con.sql("select distinct buyer_id from wh.main.buyer_sites order by 1")
                  .fetchall()] if has_buyers else []
        # buyer_file_name refuses an invalid id (`..`) before any path is built from it
        names = {buyer_id: buyer_file_name(buyer_id) for buyer_id in buyers}
        _check_targets(out, [p for n in names.values() for p in (buyers_dir / f"{n}.duckdb", buyers_dir / n,
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
            _export_parquet(con, db, out, snapshots / "all" / snapshot_id / "parquet")

        main_tmp = _build_file(con, out, published, snapshot_id, "pub", fill_main)
        if on_lake:
            transient.append(main_tmp)  # the buyer files are cut from it, then it goes
        else:
            staged.append((main_tmp, published))
        parquet_links.append((out / "parquet", snapshots / "all" / snapshot_id / "parquet"))
        log(f"published snapshot {snapshot_id}: " + ", ".join(f"{t}={n}" for t, n in result.row_counts.items()))

        # Buyers: built from the new snapshot (attached read-only from its temp file) + buyer_sites.
        if buyers:
            con.execute(f"attach {_q(main_tmp)} as pubsrc (read_only)")
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
                _export_parquet(con, db, out, snapshots / f"buyer-{name}" / snapshot_id / "parquet")

            target = buyers_dir / f"{name}.duckdb"
            staged.append((_build_file(con, out, target, snapshot_id, "buyer", fill_buyer), target))
            parquet_links.append((buyers_dir / name / "parquet", snapshots / f"buyer-{name}" / snapshot_id / "parquet"))
        if buyers:
            con.execute("detach pubsrc")
        # again, for links planted while the files were built: a refusal now still leaves the
        # old snapshot whole (nothing is swapped yet)
        _check_targets(out, [t for _, t in staged] + [link.parent for link, _ in parquet_links],
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
        _swap_symlink(out, link, target)
        # target = .snapshots/<scope>/<snapshot_id>/parquet: prune the scope's snapshot folders
        _prune(out, target.parent.parent, keep=snapshot_id, n_keep=n_keep, log=log)
    result.removed_buyers = _remove_unlisted_buyers(out, set(names.values()), log)
    _write_state(out, {"warehouse": _warehouse_name(warehouse), "marker": marker, "snapshot_id": snapshot_id})
    return result


def _remove_unlisted_buyers(out: Path, names: set[str], log) -> list[str]:
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
        if buyer_id is None or name.lower() in current or _is_real_dir(f):
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
