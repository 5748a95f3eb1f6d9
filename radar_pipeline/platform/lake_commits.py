"""How the pipeline commits to a DuckLake (lake.py attaches and connects): table write locks so
that two writers of one table queue instead of conflicting, transactions run again on a conflict
they could not avoid, commit messages and snapshot tags (runs, `radar publish`), and reading the
snapshots back."""
from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager

import duckdb

from radar_pipeline.platform.lake import ALIAS, connect, is_lake, log, retry, session_key, target_of

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
    target = target_of(key)
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
    space = target_of(key).metadata_schema or "main"
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
# run, radar_pipeline.platform.warehouse_resource.DuckDBWarehouse.setup_for_execution): every commit names it, so
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
