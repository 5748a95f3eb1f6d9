"""The warehouse as a DuckLake: catalog in PostgreSQL (or a local .ducklake file), data as
Parquet files in a folder or on object storage (METHODOLOGY-neutral: only *where* tables live).

`RADAR_WAREHOUSE` chooses the backend; the embedded DuckDB file stays the default:

    RADAR_WAREHOUSE=data/radar.duckdb                                   (default) one DuckDB file
    RADAR_WAREHOUSE="ducklake:postgres:dbname=radar host=db user=radar"  catalog in PostgreSQL
    RADAR_WAREHOUSE=ducklake:data/radar.ducklake                        catalog in a local file
    RADAR_LAKE_DATA=/shared/radar-lake   (or s3://bucket/radar/)        where the Parquet files go
    RADAR_LAKE_SCHEMA=radar_lake         (optional) PostgreSQL schema of the catalog tables

The same options can ride in the target itself, after `?` (one self-contained string, as the
Dagster resource and the tests pass it): `ducklake:postgres:dbname=radar?data_path=/x&metadata_schema=t1`.

The lake is attached as `lake` and made the default catalog (`USE lake`), so every asset,
CLI command and sql/ file runs unchanged. DuckLake has no PRIMARY KEY/UNIQUE constraints:
the DDL is applied without them (every write is already delete-then-insert of one slice,
which is what kept keys unique). Extensions load offline from the pip packages
duckdb-extension-ducklake / duckdb-extension-postgres-scanner (/ -httpfs for s3://), never
from the network: `autoinstall_known_extensions` is off.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import random
import re
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import duckdb

log = logging.getLogger(__name__)
PREFIX = "ducklake:"
ALIAS = "lake"
# The pip package and extension file for each extension the lake may need.
EXTENSIONS = {
    "ducklake": ("duckdb_extension_ducklake", "ducklake"),
    "postgres": ("duckdb_extension_postgres_scanner", "postgres_scanner"),
    "httpfs": ("duckdb_extension_httpfs", "httpfs"),
}


def is_lake(target: object) -> bool:
    return target is not None and PREFIX in str(target)


@dataclass(frozen=True)
class LakeTarget:
    catalog: str              # what follows "ducklake:" (postgres:..., or a path to a .ducklake file)
    data_path: str | None
    metadata_schema: str | None

    @property
    def on_postgres(self) -> bool:
        return self.catalog.startswith("postgres:")

    def display(self) -> str:
        return f"{PREFIX}{self.catalog}" + (f" (data {self.data_path})" if self.data_path else "")


def parse(target: object) -> LakeTarget:
    """Parse a lake target. The caller may have passed it through pathlib.Path (the CLI and the
    file-backend code do): that prepends a folder on resolve() and folds `s3://` into `s3:/`,
    so both are undone here."""
    text = str(target)
    text = text[text.index(PREFIX) + len(PREFIX):]
    options: dict[str, str] = {}
    if "?" in text:
        text, query = text.split("?", 1)
        # not parse_qsl: it reads "+" as a space, and folder names may hold one (%26 escapes "&")
        options = {k.strip().lower(): unquote(v) for k, v in
                   (part.split("=", 1) for part in query.split("&") if "=" in part) if v}
    data = options.get("data_path") or os.environ.get("RADAR_LAKE_DATA") or None
    if data:
        data = re.sub(r"^([a-z][a-z0-9+]*):/(?!/)", r"\1://", data)
    schema = options.get("metadata_schema") or os.environ.get("RADAR_LAKE_SCHEMA") or None
    return LakeTarget(text.strip(), data, schema)


def extension_file(name: str) -> Path:
    """The extension shipped by its pip package for the running duckdb version."""
    module, stem = EXTENSIONS[name]
    spec = importlib.util.find_spec(module)
    hint = (f"the DuckLake warehouse needs the pip package {module.replace('_', '-')}=={duckdb.__version__} "
            f"(pip install 'radar-pipeline' installs it; these packages exist for duckdb 1.5.x)")
    if spec is None or spec.origin is None:
        raise RuntimeError(f"{hint}: it is not installed")
    path = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}" / f"{stem}.duckdb_extension"
    if not path.is_file():
        raise RuntimeError(f"{hint}: {path} is missing (is duckdb {duckdb.__version__} the version it was built for?)")
    return path


def load_extensions(con: duckdb.DuckDBPyConnection, lake: LakeTarget) -> None:
    con.execute("set autoinstall_known_extensions = false")
    names = ["ducklake"]
    if lake.on_postgres:
        names.append("postgres")
    if lake.data_path and "://" in lake.data_path:
        names.append("httpfs")
    for name in names:
        con.execute(f"load '{extension_file(name)}'")


def _q(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def attach(con: duckdb.DuckDBPyConnection, target: object, alias: str = ALIAS, *,
           read_only: bool = False, snapshot: int | None = None) -> None:
    """Attach the lake `target` to `con` as `alias` (extensions loaded from the pip packages);
    `snapshot`: read-only, as of that snapshot id (time travel for every table at once)."""
    lake = parse(target)
    load_extensions(con, lake)
    options = []
    if lake.data_path:
        if "://" not in lake.data_path:
            Path(lake.data_path).mkdir(parents=True, exist_ok=True)
        options.append(f"data_path {_q(lake.data_path)}")
    if lake.metadata_schema:
        options.append(f"metadata_schema {_q(lake.metadata_schema)}")
    if read_only or snapshot is not None:
        options.append("read_only")
    elif not lake.on_postgres:
        Path(lake.catalog).parent.mkdir(parents=True, exist_ok=True)
    if snapshot is not None:
        options.append(f"snapshot_version {int(snapshot)}")
    opts = f" ({', '.join(options)})" if options else ""
    retry(lambda: con.execute(f"attach {_q(PREFIX + lake.catalog)} as {alias}{opts}"))


# One in-memory DuckDB per (process, lake, read-only) with the extensions loaded and the lake
# attached; connect() hands out cursors of it. Opening a lake costs ~1 s of CPU (loading the
# 40 MB postgres extension, attaching, reading the catalog) and every asset opens its own
# connection; a cursor costs nothing and still has its own transactions and temp tables.
_INSTANCES: dict[tuple[int, str, bool], duckdb.DuckDBPyConnection] = {}
_INSTANCES_LOCK = threading.Lock()
READY: set[tuple[int, str, bool]] = set()  # instances whose schema warehouse.ensure_schema checked
# Every statement outside an explicit transaction starts a lake transaction, which costs a
# catalog round trip (~20-30 ms on a local PostgreSQL, more on a remote one). A refresh opens
# ~50 sessions and ran ~65 `select current_database()` probes: the cursors connect() hands out
# are remembered here (weakly), so "is this a lake session?" needs no query.
_CURSORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # cursor -> instance key
# connect() checks that the catalog connection is alive only when the instance has not handed
# out a session for this long (a code server idle between runs while PostgreSQL restarted);
# inside a run the sessions follow each other within seconds.
LIVENESS_IDLE_S = 10.0
_LAST_USED: dict[tuple[int, str, bool], float] = {}
_TARGETS: dict[tuple[int, str, bool], LakeTarget] = {}


def instance_key(target: object, read_only: bool) -> tuple[int, str, bool]:
    return (os.getpid(), str(parse(target)), read_only)


def connect(target: object, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB session with the lake attached as `lake` and used by default (a cursor of this
    process's cached instance for that lake; close it as any connection)."""
    key = instance_key(target, read_only)
    for attempt in (1, 2):
        with _INSTANCES_LOCK:
            base = _INSTANCES.get(key)
            if base is None:
                base = duckdb.connect()
                try:
                    attach(base, target, read_only=read_only)
                except BaseException:
                    base.close()
                    raise
                _INSTANCES[key] = base
            con = base.cursor()
            idle = time.monotonic() - _LAST_USED.get(key, float("-inf"))
        try:
            con.execute(f"use {ALIAS}")
            if idle > LIVENESS_IDLE_S:
                # one catalog round trip: a cached instance whose catalog connection died (the
                # PostgreSQL server restarted under a long-lived code server) is replaced, once
                con.sql(f"select id from {ALIAS}.current_snapshot()").fetchall()
            _LAST_USED[key] = time.monotonic()
            _CURSORS[con] = key
            _TARGETS[key] = parse(target)
            return con
        except duckdb.Error:
            con.close()
            if attempt == 2:
                raise
            with _INSTANCES_LOCK:
                if _INSTANCES.get(key) is base:
                    _INSTANCES.pop(key).close()
                    READY.discard(key)
                    _LAST_USED.pop(key, None)
    raise AssertionError("unreachable")


def session_key(con: object) -> tuple[int, str, bool] | None:
    """The instance key of a session connect() handed out (None: not a lake session of ours)."""
    try:
        return _CURSORS.get(con)
    except TypeError:  # not weak-referenceable: not one of ours
        return None


def forget(target: object) -> None:
    """Close this process's cached instances of `target` (tests that drop a lake)."""
    with _INSTANCES_LOCK:
        for key in [k for k in _INSTANCES if k[1] == str(parse(target))]:
            _INSTANCES.pop(key).close()
            READY.discard(key)
            _LAST_USED.pop(key, None)


POOL = "duckdb_write"


def pool_limit(target: object) -> int:
    """Slots of the `duckdb_write` pool: 1 for a DuckDB file (one writer per file), N for a lake
    (RADAR_LAKE_WRITERS, default 4: writers commit snapshots side by side; DuckLake retries a
    commit that raced another, radar_pipeline.warehouse reruns a slice replace that conflicted)."""
    return int(os.environ.get("RADAR_LAKE_WRITERS", "4")) if is_lake(target) else 1


def apply_pool_limit(instance, target: object) -> int:
    """Set the instance's `duckdb_write` pool to pool_limit(target) (what
    `dagster instance concurrency set duckdb_write N` does), unless it already has that limit.
    Called before every `radar` run; a deployment with a daemon sets it once (docs/deploy.md)."""
    n = pool_limit(target)
    storage = instance.event_log_storage
    try:
        if storage.get_concurrency_info(POOL).slot_count != n:
            storage.set_concurrency_slots(POOL, n)
    except NotImplementedError:  # an event log storage without pools: nothing to limit
        pass
    return n


def lake_ddl(ddl: str) -> str:
    """The warehouse DDL without PRIMARY KEY clauses, which DuckLake does not support.
    A table-level `, primary key (...)` (maybe after a `-- comment` on the line before) goes;
    a column-level `primary key` becomes `not null`, the half of it DuckLake keeps."""
    ddl = re.sub(r",([ \t]*--[^\n]*)?\s*primary key\s*\([^)]*\)",
                 lambda m: (m.group(1) or "") + "\n", ddl, flags=re.I)
    return re.sub(r"\bprimary key\b", "not null", ddl, flags=re.I)


def is_conflict(exc: BaseException) -> bool:
    """A DuckLake commit that lost a race it could not settle itself (two writers deleting from
    the same data file, two creates of one table): the whole transaction can be run again."""
    text = str(exc).lower()
    return isinstance(exc, duckdb.Error) and ("conflict" in text or "concurrent" in text
                                             or "duplicate key value" in text)


RETRIES = 0  # conflicts retried by this process (bench/bench_lake.py reports them)


def retry(fn, attempts: int = 8):
    global RETRIES
    delay = 0.2
    for i in range(attempts):
        try:
            return fn()
        except duckdb.Error as exc:
            if i == attempts - 1 or not is_conflict(exc):
                raise
            RETRIES += 1
            log.info("lake write conflict, retry %d in %.1f s: %s", i + 1, delay, " ".join(str(exc).split())[:300])
            time.sleep(delay * random.uniform(0.5, 1.5))  # jitter: two writers do not retry in step
            delay = min(delay * 2, 5.0)


# Table write locks. DuckLake settles concurrent commits optimistically and its rule is coarse:
# a transaction that inserts into a table fails at commit when another one committed a delete
# from that table meanwhile, whichever rows either touched. Every radar write is
# delete-then-insert of a slice, so two editions refreshed side by side conflicted on every
# shared table (indicator_observations, source_files, edition_sources, ...: 5-12 conflicts per
# refresh pair, each a back-off sleep plus the whole transaction done again). On a PostgreSQL
# catalog a slice replace first takes a PostgreSQL advisory lock per table it writes (keyed by
# the lake's catalog schema and the table): a second writer of the same table waits for the
# first one's commit (a few hundred ms) and then starts on the newer snapshot instead of failing
# and redoing its work. Writes to other tables, and readers, never wait. A writer that cannot
# take locks (no psycopg2, catalog not reachable that way) falls back to retrying.
_LOCK_CONNECTIONS: dict[tuple[int, str, bool], object] = {}  # False: could not connect
_LOCK_GUARD = threading.Lock()
LOCK_WAITS = [0, 0.0]  # lock waits that blocked and their seconds (bench/bench_lake.py reports them)


def _lock_connection(key):
    conn = _LOCK_CONNECTIONS.get(key)
    if conn is False:  # tried once and failed: not again for every write
        return None
    if conn is not None and not conn.closed:
        return conn
    target = _TARGETS.get(key)
    if target is None or not target.on_postgres:
        return None
    try:
        import psycopg2

        conn = psycopg2.connect(target.catalog[len("postgres:"):], connect_timeout=10)
        conn.autocommit = True
    except Exception as exc:  # noqa: BLE001 — locks are an optimisation; conflicts are still retried
        log.info("lake table locks unavailable (%s): concurrent writers retry on conflict instead", exc)
        _LOCK_CONNECTIONS[key] = False
        return None
    _LOCK_CONNECTIONS[key] = conn
    return conn


@contextmanager
def table_locks(con: duckdb.DuckDBPyConnection, tables):
    """Hold this lake's write lock of each table in `tables` (sorted: no deadlock between two
    writers of overlapping sets) for the duration of the block; a no-op off PostgreSQL."""
    key = session_key(con)
    names = sorted(set(tables))
    with _LOCK_GUARD:
        conn = _lock_connection(key) if key is not None and names else None
    if conn is None:
        yield
        return
    space = _TARGETS[key].metadata_schema or "main"
    taken = []
    try:
        with conn.cursor() as cur:
            for name in names:
                cur.execute("select pg_try_advisory_lock(hashtext(%s), hashtext(%s))", (space, name))
                if not cur.fetchone()[0]:
                    started = time.perf_counter()
                    cur.execute("select pg_advisory_lock(hashtext(%s), hashtext(%s))", (space, name))
                    LOCK_WAITS[0] += 1
                    LOCK_WAITS[1] += time.perf_counter() - started
                taken.append(name)
        yield
    finally:
        try:
            with conn.cursor() as cur:
                for name in reversed(taken):
                    cur.execute("select pg_advisory_unlock(hashtext(%s), hashtext(%s))", (space, name))
        except Exception:  # noqa: BLE001 — a dead session releases its locks anyway
            conn.close()


def run_transaction(con: duckdb.DuckDBPyConnection, body, *, attempts: int = 8):
    """Run `body(con)` inside begin/commit; on a lake write conflict roll back and run it again
    (the writes are delete-then-insert of a slice, so a rerun gives the same rows)."""
    def once():
        con.execute("begin transaction")
        try:
            out = body(con)
            con.execute("commit")
            return out
        except BaseException as exc:
            try:
                con.execute("rollback")
            except Exception:  # noqa: BLE001 — the commit already ended the transaction
                pass
            raise exc
    return retry(once, attempts)


# The Dagster run whose steps this process executes (set by the warehouse resource for the
# run, radar_pipeline.warehouse.DuckDBWarehouse.setup_for_execution): every commit names it, so
# tag_run finds the last snapshot a run wrote whoever launched it (CLI, UI, schedule, sensor).
_RUN_ID: str | None = None


def set_run(run_id: str | None) -> None:
    global _RUN_ID
    _RUN_ID = run_id


def commit_message(con: duckdb.DuckDBPyConnection, message: str, **extra) -> None:
    """Name the snapshot the open transaction will commit (`lake.snapshots()` shows it); the
    extra info carries the Dagster run id when a run is executing."""
    if _RUN_ID and "run_id" not in extra:
        extra["run_id"] = _RUN_ID
    con.execute(f"call {ALIAS}.set_commit_message('radar', $m, extra_info => $x)",
                {"m": message, "x": json.dumps(extra, default=str)})


TAGS_DDL = """create table if not exists snapshot_tags (
    snapshot_id bigint not null,     -- the lake snapshot the tag names (read it with AT (VERSION => id))
    kind varchar not null,           -- refresh | scoring | ingest | published
    tagged_at timestamp not null,    -- UTC
    message varchar not null,
    extra varchar                    -- JSON: edition, run id, row counts
)"""


def tag_snapshot(con: duckdb.DuckDBPyConnection, kind: str, message: str, *, snapshot: int | None = None,
                 **extra) -> int:
    """Name a snapshot of the lake (default: the current one): a row in `snapshot_tags` (committed
    as a snapshot of its own whose commit message is `message`). A refresh or scoring run is many
    transactions (one per asset); the tag marks the state it left, so `AT (VERSION => snapshot_id)`
    reads the warehouse exactly as that run (or a publish) saw it. Returns the tagged snapshot id."""
    retry(lambda: con.execute(TAGS_DDL))

    def body(c):
        sid = current_snapshot(c) if snapshot is None else snapshot
        c.execute("insert into snapshot_tags values ($s, $k, current_timestamp at time zone 'UTC', $m, $x)",
                  {"s": sid, "k": kind, "m": message, "x": json.dumps(extra, default=str)})
        commit_message(c, message, kind=kind, tagged_snapshot=sid, **extra)
        return sid
    return run_transaction(con, body)


def tag_run(target: object, run_id: str, kind: str, message: str, *, ended_at: float | None = None,
            **extra) -> int | None:
    """The closing tag of one Dagster run on the lake `target` (None off a lake): the last
    snapshot the run's own writes committed (their commit info names the run), else the last one
    committed by the time the run ended (`ended_at`, epoch seconds), else the current one. A run
    already tagged with this kind is not tagged again (the CLI and the run-status sensor may both
    see one run). Returns the tagged snapshot id."""
    if not is_lake(target):
        return None
    con = connect(target)
    try:
        retry(lambda: con.execute(TAGS_DDL))
        done = con.sql("select snapshot_id from snapshot_tags where kind = $k "
                       "and json_extract_string(extra, '$.run_id') = $r", params={"k": kind, "r": run_id}).fetchall()
        if done:
            return done[0][0]
        sid = con.sql(f"""select max(snapshot_id) from {ALIAS}.snapshots()
                          where json_extract_string(commit_extra_info, '$.run_id') = $r
                            and json_extract(commit_extra_info, '$.tagged_snapshot') is null""",
                      params={"r": run_id}).fetchall()[0][0]
        if sid is None and ended_at is not None:
            sid = con.sql(f"select max(snapshot_id) from {ALIAS}.snapshots() "
                          f"where snapshot_time <= to_timestamp($t)", params={"t": ended_at}).fetchall()[0][0]
        return tag_snapshot(con, kind, message, snapshot=sid, run_id=run_id, **extra)
    finally:
        con.close()


PUBLISHED_COUNTS = ("country_topic_risk", "inherent_risk_overall", "site_scores", "sites")


def publish(con: duckdb.DuckDBPyConnection) -> dict:
    """`radar publish` on a lake: no copy. BI tools read the lake itself (attached read-only),
    and the published state is the current snapshot, tagged `published` in snapshot_tags;
    sql/examples/scores_as_published.sql reads it back with AT (VERSION => ...)."""
    counts = {t: con.sql(f"select count(*) from {t}").fetchall()[0][0] for t in PUBLISHED_COUNTS}
    sid = tag_snapshot(con, "published", "published for BI", row_counts=counts)
    at = con.sql("select tagged_at from snapshot_tags where kind = 'published' and snapshot_id = $s "
                 "order by tagged_at desc limit 1", params={"s": sid}).fetchall()[0][0]
    return {"snapshot_id": sid, "published_at": str(at), "row_counts": counts}


def current_snapshot(con: duckdb.DuckDBPyConnection) -> int:
    return con.sql(f"select id from {ALIAS}.current_snapshot()").fetchall()[0][0]


def snapshots(con: duckdb.DuckDBPyConnection):
    return con.sql(f"select snapshot_id, snapshot_time, author, commit_message, commit_extra_info "
                   f"from {ALIAS}.snapshots() order by snapshot_id")
