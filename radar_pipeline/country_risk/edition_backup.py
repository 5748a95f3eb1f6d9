"""A refresh of one edition lands whole or not at all (issue 21 item 5).

A refresh is a Dagster run of many steps, each replacing its slice of the edition in its own
transaction (a source's observations, the indicator scores, the inherent risk, ...). If a
step fails, the steps before it have already replaced their slices: without this module the
edition would be left half new, half old — or, for a new edition, with rows nobody asked to
keep. So the first step of a refresh (`countries`, upstream of every edition step) copies the
edition's rows of every edition table into backup tables (`refresh_backup__<table>`) in the
warehouse itself — the same catalog, so it works on a DuckDB file and a DuckLake alike, and
no file outside the warehouse is written. When the run ends:

* success -> `commit`: the copy is dropped;
* failure -> `rollback`: every edition table gets the copied rows back in ONE transaction
  (a new edition: no rows at all), then the copy is dropped.

The CLI calls these when its in-process run returns; the daemon's `refresh_outcome` run-status
sensors do it for runs launched from the UI, the schedule or a backfill. A run killed before
either happened leaves its copy behind: the next refresh's first step (`recover`) finishes it
by the run's final status (success: drop, anything else: restore). A retried run re-executes
every step (the job's retry strategy is ALL_STEPS), so its `countries` step restores the
failed attempt's copy before copying again.
"""
from __future__ import annotations

import os
import socket
from datetime import UTC, datetime

import duckdb

from radar_pipeline.metadata.warehouse import WAREHOUSE
from radar_pipeline.platform.processes import pid_alive
from radar_pipeline.platform.warehouse import in_transaction, replace_slices

PREFIX = "refresh_backup__"
RUNS = PREFIX + "runs"   # one row per run whose copy is kept: (run_id, edition, begun_at, pid, host)


def stage_row(edition: int, stage: str):
    """The edition_stages row the last step of a stage writes with its rows (same transaction):
    when the stage was computed and with which rules (METHODOLOGY §8c, `radar methodology --stale`)."""
    import polars as pl

    from radar_pipeline.rules import fingerprint

    return pl.DataFrame({"edition": [edition], "stage": [stage], "methodology_version": [fingerprint.version(stage)],
                         "computed_at": [datetime.now(UTC).replace(tzinfo=None)]},
                        schema={"edition": pl.Int32, "stage": pl.String, "methodology_version": pl.String,
                                "computed_at": pl.Datetime("us")})


def edition_tables() -> list[str]:
    """Every warehouse table a refresh writes per edition: declared with an `edition` column,
    not a view, not the sites' tables (scoring writes those, per site, after the refresh)."""
    return [t.name for t in WAREHOUSE.values()
            if t.view_sql is None and "edition" in t.column_names and not t.name.startswith("site_")]


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_name = $t "
                            "and table_schema = current_schema()", {"t": table}).fetchall()[0][0])


def pending(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    """(run_id, edition) of every kept copy, oldest first."""
    return [(r, e) for r, e, *_ in _pending_rows(con)]


def _pending_rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """(run_id, edition, begun_at, pid, host) of every kept copy, oldest first."""
    if not _exists(con, RUNS):
        return []
    return [(r, int(e), t, p, h) for r, e, t, p, h in
            con.sql(f"select run_id, edition, begun_at, pid, host from {RUNS} order by begun_at").fetchall()]


def begin(con: duckdb.DuckDBPyConnection, edition: int, run_id: str, instance=None) -> None:
    """Copy the edition's rows of every edition table, once per run (a step re-executed within
    the run keeps the first copy: it holds the rows from before the run)."""
    recover(con, instance, current_run=run_id)
    if any(r == run_id for r, _e in pending(con)):
        return
    tables = edition_tables()

    def body(c):
        c.execute(f"create table if not exists {RUNS} (run_id varchar, edition integer, begun_at timestamp, "
                  "pid integer, host varchar)")
        for table in tables:
            backup = PREFIX + table
            if _exists(c, backup) and _columns(c, backup) != ["backup_run", *_columns(c, table)]:
                c.execute(f"drop table {backup}")  # the table gained a column since: copies start afresh
            c.execute(f"create table if not exists {backup} as "
                      f"select ''::varchar as backup_run, * from {table} limit 0")
            c.execute(f"insert into {backup} select $run, * from {table} where edition = $e",
                      {"run": run_id, "e": edition})
        c.execute(f"insert into {RUNS} values ($run, $e, $t, $pid, $host)",
                  {"run": run_id, "e": edition, "t": datetime.now(UTC).replace(tzinfo=None), "pid": os.getpid(),
                   "host": socket.gethostname()})
    in_transaction(con, body, f"keep edition {edition} before refresh run {run_id}")


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute("select column_name from information_schema.columns where table_name = $t "
                                      "and table_schema = current_schema() order by ordinal_position",
                                      {"t": table}).fetchall()]


def commit(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    """The run succeeded: drop its copy. Returns whether it had one."""
    if not any(r == run_id for r, _e in pending(con)):
        return False
    in_transaction(con, lambda c: _drop(c, run_id), f"drop the copy of refresh run {run_id}")
    return True


def rollback(con: duckdb.DuckDBPyConnection, run_id: str) -> int | None:
    """The run failed: put the edition's rows back as they were before it, in one transaction,
    and drop the copy. Returns the edition restored (None: the run kept no copy). When a later
    run of the same edition has begun since, that run's copy already holds these rows and the
    later run owns the edition: this copy is only dropped."""
    runs = pending(con)
    mine = [(i, e) for i, (r, e) in enumerate(runs) if r == run_id]
    if not mine:
        return None
    index, edition = mine[0]
    if any(e == edition for _r, e in runs[index + 1:]):
        in_transaction(con, lambda c: _drop(c, run_id), f"drop the copy of refresh run {run_id}")
        return None
    replace_slices(con, [(table, f"select * exclude (backup_run) from {PREFIX}{table} where backup_run = $run",
                          {"edition": edition}) for table in edition_tables()], params={"run": run_id})
    in_transaction(con, lambda c: _drop(c, run_id), f"drop the copy of refresh run {run_id}")
    return edition


def _drop(c, run_id: str) -> None:
    c.execute(f"delete from {RUNS} where run_id = $run", {"run": run_id})
    left = c.sql(f"select count(*) from {RUNS}").fetchall()[0][0]
    for table in edition_tables():
        if not _exists(c, PREFIX + table):
            continue
        if left:
            c.execute(f"delete from {PREFIX}{table} where backup_run = $run", {"run": run_id})
        else:
            c.execute(f"drop table {PREFIX}{table}")
    if not left:
        c.execute(f"drop table {RUNS}")


def recover(con: duckdb.DuckDBPyConnection, instance=None, current_run: str | None = None) -> list[str]:
    """Finish the copies of runs that ended without `commit`/`rollback` (killed, or ended while
    no sensor ran). By the run's status in `instance`: success -> drop, failed/canceled ->
    restore, queued/running -> left alone. A run the instance does not know (an in-process run
    on another instance: a test, a script's `materialize`) is judged by its process and the
    warehouse: its process still alive on this host -> left alone; else it finished if it wrote
    its edition's last stage (edition_stages 'inherent') after it began -> drop, or died before
    -> restore. Returns what was done, one line per run."""
    import dagster as dg

    done = []
    for run_id, edition, begun_at, pid, host in _pending_rows(con):
        if run_id == current_run:
            continue
        run = instance.get_run_by_id(run_id) if instance is not None else None
        status = run.status if run is not None else None
        if status is None:
            if host == socket.gethostname() and pid and pid_alive(int(pid)):
                continue
            finished = con.execute("select count(*) from edition_stages where edition = $e and stage = 'inherent' "
                                   "and computed_at >= $t", {"e": edition, "t": begun_at}).fetchall()[0][0]
            status = dg.DagsterRunStatus.SUCCESS if finished else dg.DagsterRunStatus.FAILURE
        if status == dg.DagsterRunStatus.SUCCESS:
            commit(con, run_id)
            done.append(f"refresh run {run_id} of edition {edition} succeeded: its copy dropped")
        elif status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            rollback(con, run_id)
            done.append(f"refresh run {run_id} of edition {edition} did not finish: edition {edition} restored "
                        "as it was before the run")
    return done
