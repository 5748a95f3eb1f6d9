"""Run the project's Dagster jobs in-process (the `radar` commands, the tests, benches, scripts).

Every job launch outside the daemon lives here, on the top floor with the commands: it imports
the definitions and the domain packages, and nothing below imports it (test_layers checks that).
The daemon's automation (radar_pipeline.automation) decides *what* is due; `follow_data` and
`rescore_all` do what it would do when no daemon runs.
"""
from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl

from radar_pipeline.platform import lake, lake_commits, settings
from radar_pipeline.platform.partitions import add_site_partitions, sqlite_partition_warning
from radar_pipeline.platform.processes import pid_alive
from radar_pipeline.platform.warehouse import DuckDBWarehouse

# Dagster's console logger prints one DEBUG line per partition event; INFO keeps
# the per-source progress lines and drops the per-site noise.
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _first_paragraph(record) -> bool:
    """Dagster's console logger prints a failed step's stack trace (twice: the step, the run);
    a `radar` user reads the one-line FAILED messages the commands print instead. --debug
    (RADAR_DEBUG=1) keeps the traces."""
    if os.environ.get("RADAR_DEBUG") != "1" and isinstance(record.msg, str) and "Stack Trace:" in record.msg:
        record.msg = record.msg.split("\n\n", 1)[0] + " (radar --debug ... shows the traceback)"
    return True


def _short_console_errors() -> None:
    """Give every console logger Dagster creates in this process the filter above (Dagster has no
    setting for it; the logger is built per run by dagster._loggers.create_console_logger)."""
    import dagster._loggers as loggers

    create = getattr(loggers, "create_console_logger", None)
    if create is None or getattr(create, "radar_short", False):
        return

    def create_short(name, level):
        logger = create(name, level)
        logger.addFilter(_first_paragraph)
        return logger
    create_short.radar_short = True
    loggers.create_console_logger = create_short


_short_console_errors()


@dataclass
class RunOutcome:
    success: bool
    failures: dict[str, str]          # step key -> innermost error message
    result: dg.ExecuteInProcessResult
    runs: int = 1                     # runs planned (score_sites: one per chunk of sites)
    runs_failed: int = 0
    interrupted: bool = False         # stopped by a signal (Ctrl-C, SIGTERM): later runs not started


def root_message(err) -> str:
    """The user's error: Dagster wraps the user's exception in its own. Unwrap only
    Dagster's wrappers, so a SourceError/Failure keeps its "[source] file: reason"
    instead of being replaced by its low-level cause (UnicodeDecodeError, ConnectTimeout)."""
    while err is not None and err.cause is not None and (
            err.cls_name.startswith(("Dagster", "RetryRequested"))):
        err = err.cause
    return err.message.strip() if err is not None else "unknown error"


PID_TAG, HOST_TAG = "radar/pid", "radar/host"
# NOT_STARTED too: a `radar` process killed between creating its in-process run and starting
# it leaves the run there for good (the UI lists it as not started, nothing ever ends it)
LIVE_STATUSES = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def _own_tags() -> dict[str, str]:
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark runs whose `radar` process died (SIGKILL, OOM, power loss) as failed, whether they
    were running or not started yet.

    An in-process run holds its `duckdb_write` pool slot until it finishes; if
    the process is killed, the run stays STARTED and the slot stays claimed, so
    every later run would wait for it forever. Without a daemon nothing frees
    it, so each `radar` command does: same host, process gone -> run failed,
    slots freed. (Daemon-launched runs are covered by run_monitoring.)
    """
    reaped = []
    host = socket.gethostname()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=LIVE_STATUSES, tags={HOST_TAG: host})):
        pid = int(run.tags.get(PID_TAG, "0") or 0)
        if pid and pid != os.getpid() and not pid_alive(pid, cmdline_contains=b"radar"):
            instance.report_run_failed(run, message=f"radar process {pid} on {host} died mid-run")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            reaped.append(run.run_id)
    return reaped


def refresh_edition(edition: int, *, allow_missing_topics: list[str] | None = None,
                    warehouse: Path | str | None = None,
                    instance: dg.DagsterInstance | None = None) -> RunOutcome:
    from radar_pipeline.sources import prefetch

    # the publisher files parsed on a thread while the definitions load and the run starts
    # (sources/prefetch.py); stopped below whatever the run's outcome
    ahead = prefetch.start(edition, until_stopped=True)
    try:
        return _refresh_edition(edition, allow_missing_topics=allow_missing_topics, warehouse=warehouse,
                                instance=instance)
    finally:
        if ahead is not None:
            ahead.stop()


def _refresh_edition(edition: int, *, allow_missing_topics: list[str] | None,
                     warehouse: Path | str | None, instance: dg.DagsterInstance | None) -> RunOutcome:
    from radar_pipeline.definitions import defs
    from radar_pipeline.platform.run_settings import allowed_missing_topics, environment

    job = defs.resolve_job_def("refresh_edition")
    resources = {"warehouse": DuckDBWarehouse(database=str(warehouse or settings.warehouse_path()))}
    instance = instance or dg.DagsterInstance.ephemeral()
    reap_dead_runs(instance)
    lake.apply_pool_limit(instance, resources["warehouse"].path)
    # country_topic_risk reads the topics allowed missing where a launchpad run puts them (the
    # warehouse resource's allow_missing_topics, run_settings.py)
    allowed = ",".join(dict.fromkeys([*allowed_missing_topics(), *(allow_missing_topics or [])]))
    with environment({"RADAR_ALLOW_MISSING_TOPICS": allowed or None}):
        result = job.execute_in_process(partition_key=str(edition), run_config=QUIET, instance=instance,
                                        resources=resources, raise_on_error=False, tags=_own_tags())
    failures = {e.step_key: root_message(e.step_failure_data.error)
                for e in result.all_events if e.is_step_failure}
    # the edition lands whole or not at all (country_risk/edition_backup.py)
    from radar_pipeline.country_risk import edition_backup

    with resources["warehouse"].get_connection() as con:
        (edition_backup.commit if result.success else edition_backup.rollback)(con, result.run_id)
    if result.success:
        lake_commits.tag_run(resources["warehouse"].path, result.run_id, "refresh", f"refresh edition {edition}",
                     edition=edition)
    return RunOutcome(result.success, failures, result)


def rescore_overrides(*, warehouse: Path | str | None = None, instance: dg.DagsterInstance | None = None,
                      log=None) -> RunOutcome | None:
    """METHODOLOGY §8b, the overrides folder as an input: rescore (Dagster runs, as the
    overrides sensor requests them) exactly the sites whose stored category disagrees with the
    overrides in force today — added, edited or removed by hand, or expired — on every edition
    they have. None when every stored category agrees."""
    from radar_pipeline.platform.warehouse import connect, exists
    from radar_pipeline.sites import store

    log = log or (lambda message: print(message, file=sys.stderr))
    warehouse = warehouse or settings.warehouse_path()
    if not exists(warehouse):
        return None
    con = connect(warehouse, read_only=True)
    try:
        has_scores = con.sql("select count(*) from information_schema.tables "
                             "where table_name = 'site_scores'").fetchall()[0][0]
        drift = store.override_drift(con) if has_scores else None
    finally:
        con.close()
    if drift is None or drift.is_empty():
        return None
    outcome = None
    for (edition,), group in drift.group_by("edition", maintain_order=True):
        ids = group["site_id"].to_list()
        log(f"edition {edition}: {len(ids)} site(s) whose category disagrees with the overrides in force today "
            f"(RADAR_OVERRIDES): rescoring them")
        one = score_sites(ids, edition=int(edition), warehouse=warehouse, instance=instance, only_stale=True, log=log)
        outcome = one if outcome is None else RunOutcome(
            outcome.success and one.success, {**outcome.failures, **one.failures}, one.result,
            outcome.runs + one.runs, outcome.runs_failed + one.runs_failed, outcome.interrupted or one.interrupted)
    return outcome


def score_sites(keys: list[str], *, edition: int = 0, warehouse: Path | str | None = None,
                instance: dg.DagsterInstance | None = None, only_stale: bool = False,
                run_chunk: int | None = None, log=None) -> RunOutcome:
    """Register `keys` as site partitions (in chunks) and score them: one run over their
    range, or one run per RADAR_RESCORE_CHUNK keys when there are more. only_stale: each
    run scores only the sites of its range whose current content has no score yet (not the
    unchanged sites between two changed ones)."""
    from radar_pipeline.definitions import defs
    from radar_pipeline.platform.partitions import sites
    from radar_pipeline.sites.assets import RANGE_END, RANGE_START, RESCORE_CHUNK, range_requests

    log = log or (lambda message: print(message, file=sys.stderr))
    instance = instance or dg.DagsterInstance.ephemeral()
    reap_dead_runs(instance)
    known = instance.get_dynamic_partitions(sites.name)
    known_set = set(known)  # built once: `in set(known)` inside the loop is O(n*m)
    new = [k for k in dict.fromkeys(keys) if k not in known_set]
    warning = sqlite_partition_warning(instance, len(set(keys)))
    if warning:
        log(f"WARNING: {warning}")
    if new:
        add_site_partitions(instance, new)
    requests = range_requests([*known, *new], set(keys), edition=edition, only_stale=only_stale,
                              chunk=run_chunk or RESCORE_CHUNK)
    job = defs.resolve_job_def("score_sites")
    resources = {"warehouse": DuckDBWarehouse(database=str(warehouse or settings.warehouse_path()))}
    lake.apply_pool_limit(instance, resources["warehouse"].path)
    success, failures, result, runs_failed, interrupted = True, {}, None, 0, False
    for request in requests:
        result = job.execute_in_process(run_config={**QUIET, **request.run_config}, instance=instance,
                                        resources=resources,
                                        tags={RANGE_START: request.tags[RANGE_START],
                                              RANGE_END: request.tags[RANGE_END], **_own_tags()},
                                        raise_on_error=False)
        # a failed chunk does not stop the others: its sites stay unscored (stale_sites) and the
        # next ingest or sensor tick scores exactly those
        success = success and result.success
        runs_failed += not result.success
        step_errors = [e.step_failure_data.error for e in result.all_events if e.is_step_failure]
        failures.update({e.step_key: root_message(e.step_failure_data.error)
                         for e in result.all_events if e.is_step_failure})
        # but Ctrl-C / SIGTERM does: Dagster turns the signal into a failed run, and without this
        # the command would carry on with the next chunk
        if any(_interrupted(err) for err in step_errors):
            interrupted = True
            break
    if success and result is not None:
        lake_commits.tag_run(resources["warehouse"].path, result.run_id, "scoring", f"score {len(set(keys))} site(s)"
                     + (f" for edition {edition}" if edition else ""), edition=edition)
    return RunOutcome(success, failures, result, runs=len(requests), runs_failed=runs_failed,
                      interrupted=interrupted)


def _interrupted(err) -> bool:
    """A step failure caused by a signal (DagsterExecutionInterruptedError, KeyboardInterrupt)."""
    while err is not None:
        if err.cls_name in ("DagsterExecutionInterruptedError", "KeyboardInterrupt"):
            return True
        err = err.cause
    return False


# --- publish ----------------------------------------------------------------------------------

def publish_warehouse(*, warehouse: Path | str | None = None,
                      instance: dg.DagsterInstance | None = None) -> RunOutcome:
    """Reload buyer lists and publish a new snapshot to RADAR_PUBLISHED (one in-process run)."""
    from radar_pipeline.definitions import defs

    instance = instance or dg.DagsterInstance.ephemeral()
    reap_dead_runs(instance)
    job = defs.resolve_job_def("publish_warehouse")
    resources = {"warehouse": DuckDBWarehouse(database=str(warehouse or settings.warehouse_path()))}
    lake.apply_pool_limit(instance, resources["warehouse"].path)
    result = job.execute_in_process(run_config=QUIET, instance=instance, resources=resources,
                                    raise_on_error=False, tags=_own_tags())
    failures = {e.step_key: root_message(e.step_failure_data.error)
                for e in result.all_events if e.is_step_failure}
    return RunOutcome(result.success, failures, result)


def publish_metadata(outcome: RunOutcome) -> dict:
    """The `publish` asset's materialization metadata (path, row_counts, buyers) as plain values."""
    for event in outcome.result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat.asset_key == dg.AssetKey("publish"):
            return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    return {}


def open_hint(path: Path | str) -> str:
    """The commands a user types to look at a published snapshot (read-only: never blocks the pipeline)."""
    path = Path(path)
    return "\n".join([
        f"  duckdb -readonly {path}   # with the DuckDB CLI, if installed",
        f"  python -c \"import duckdb; print(duckdb.connect('{path}', read_only=True)"
        ".sql('select * from site_scores_latest limit 10'))\"",
        f"  Parquet for any BI tool: {path.parent / 'parquet'}/*.parquet",
    ])


def publish_cli(*, warehouse: Path | str | None, instance: dg.DagsterInstance) -> int:
    """`radar publish` and the publish step at the end of `radar refresh` / `radar sites ingest`."""
    started = time.perf_counter()
    outcome = publish_warehouse(warehouse=warehouse, instance=instance)
    if not outcome.success:
        for step, message in outcome.failures.items():
            print(f"FAILED {step}: {message}", file=sys.stderr)
        print("Publishing failed; the previous BI snapshot (if any) is unchanged.", file=sys.stderr)
        return 1
    meta = publish_metadata(outcome)
    if not meta:  # the publish asset held back (sites scored before the latest refresh): it said why
        print("Not published (above: why); the previous BI snapshot (if any) is unchanged.", file=sys.stderr)
        return 0
    if lake.is_lake(warehouse or settings.warehouse_path()):
        print(f"Published lake snapshot {meta.get('snapshot_id')} at {meta.get('published_at')} "
              f"(no copy of the lake) in {time.perf_counter() - started:.1f}s; read it as published with "
              f"sql/examples/lake/scores_as_published.sql, or attach the lake read-only (docs/deploy.md). "
              f"Parquet export of that snapshot: {meta.get('parquet')}/*.parquet; buyer files: "
              f"{len(meta.get('buyers') or {})} in {Path(meta.get('parquet') or '.').parent / 'buyers'}")
        return 0
    path = Path(meta.get("path") or settings.published_path())
    counts = meta.get("row_counts") or {}
    summary = ", ".join(f"{t} {n}" for t, n in counts.items() if t in (
        "country_risk", "inherent_risk", "site_scores_latest"))
    print(f"Published the BI snapshot in {time.perf_counter() - started:.1f}s -> {path}"
          + (f" ({summary})" if summary else ""))
    print("Open it (read-only) with:\n" + open_hint(path))
    return 0


# --- what the daemon's automation does, without a daemon ---------------------------------------

def rescore_all(instance: dg.DagsterInstance, *, warehouse: Path | str | None = None, log=print) -> bool:
    """Rescore every registered site on the latest edition in one run (the CLI after a refresh)."""
    from radar_pipeline.platform.partitions import sites

    keys = instance.get_dynamic_partitions(sites.name)
    if not keys:
        return True
    outcome = score_sites(keys, warehouse=warehouse, instance=instance)
    if not outcome.success:
        for step, message in outcome.failures.items():
            print(f"FAILED {step}: {message}", file=sys.stderr)
        print("Rescoring the sites failed; their previous scores are kept.", file=sys.stderr)
        return False
    log(f"Rescored {len(keys)} site(s) on the latest edition")
    return True


def follow_data(instance: dg.DagsterInstance, cursor, *, warehouse: Path | str | None = None,
                log=print, max_rounds: int = 4):
    """Evaluate the automation conditions against `instance` and run what they request,
    in-process, until nothing more is requested — what the daemon's automation sensor does.
    `cursor` is the result of an evaluation made BEFORE the upstream change (see `baseline`).
    Returns the last cursor."""
    from radar_pipeline.automation import FOLLOWS_DATA
    from radar_pipeline.definitions import defs

    wh_path = warehouse or settings.warehouse_path()
    for round_ in range(max_rounds):
        result = dg.evaluate_automation_conditions(defs, instance, cursor=cursor)
        cursor = result.cursor
        if not result.total_requested:
            if round_:
                break
            continue  # publish waits one tick after a refresh (automation.after_rescoring), even with no site
        sites = sorted(k for k in result.get_requested_partitions(dg.AssetKey("site_scores")) if k)
        if sites:
            log(f"rescoring {len(sites)} site(s) (their inherent risk changed)")
            outcome = score_sites(sites, warehouse=warehouse, instance=instance)
            if not outcome.success:
                raise RuntimeError(f"rescoring failed: {outcome.failures}")
        # in one tick's order, as the daemon's backfill runs them: scores, then publish
        pictures = {k: result.get_requested_partitions(dg.AssetKey(k)) for k in FOLLOWS_DATA
                    if k not in ("site_scores", "publish") and result.get_num_requested(dg.AssetKey(k))}
        if result.get_num_requested(dg.AssetKey("publish")):
            log("publishing the BI snapshot (its inputs changed)")
            outcome = publish_warehouse(warehouse=warehouse, instance=instance)
            if not outcome.success:
                raise RuntimeError(f"publish failed: {outcome.failures}")
        for key, partitions in pictures.items():
            assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and
                      dg.AssetKey(key) in a.keys]
            for partition in sorted(p for p in partitions if p):
                dg.materialize(assets, partition_key=partition, instance=instance, run_config=QUIET,
                               resources={"warehouse": DuckDBWarehouse(database=str(wh_path))},
                               raise_on_error=False, tags=_own_tags())
            if None in partitions:
                dg.materialize(assets, instance=instance, run_config=QUIET, raise_on_error=False,
                               resources={"warehouse": DuckDBWarehouse(database=str(wh_path))}, tags=_own_tags())
    return cursor


def baseline(instance: dg.DagsterInstance):
    """The automation cursor now: pass it to `follow_data` after changing upstream data."""
    from radar_pipeline.definitions import defs

    return dg.evaluate_automation_conditions(defs, instance).cursor


# --- rule edits: recompute what disagrees with the rules in force (issue 21 item 2) ---------------

def _stale(warehouse: Path | str):
    from radar_pipeline.platform.warehouse import connect
    from radar_pipeline.rules import staleness

    con = connect(warehouse, read_only=True)
    try:
        stale = staleness.stale_rows(con)
        allowed = {e: staleness.missing_topics(con, e) for e in staleness.stale_editions(stale)}
        sites = staleness.stale_site_scores(con)
    finally:
        con.close()
    return stale, allowed, sites


def refresh_stale_editions(instance: dg.DagsterInstance, *, warehouse: Path | str | None = None,
                           log=print) -> list[str]:
    """Refresh every edition with a row computed by older country or inherent rules (found by
    version, radar_pipeline/rules/staleness.py), each allowed to miss the topics it lacks today.
    Returns the failures, one line per edition."""
    from radar_pipeline.rules import staleness

    wh = warehouse or settings.warehouse_path()
    stale, allowed, _sites = _stale(wh)
    problems = []
    for edition in staleness.stale_editions(stale):
        log(f"edition {edition}: computed with rules that have changed since; refreshing it with the rules in force")
        out = refresh_edition(edition, allow_missing_topics=allowed[edition], warehouse=wh, instance=instance)
        if not out.success:
            problems.append(f"edition {edition}: refresh failed: " + "; ".join(out.failures.values()))
    return problems


def rescore_stale_sites(instance: dg.DagsterInstance, *, warehouse: Path | str | None = None,
                        log=print) -> list[str]:
    """Rescore, per edition, the site scores computed with older rules or before their edition's
    inputs last changed — on editions whose country and inherent rows are current (a site score
    on stale inherent risk would only be stale again). Returns the failures."""
    from radar_pipeline.rules import staleness

    wh = warehouse or settings.warehouse_path()
    stale, _allowed, sites = _stale(wh)
    behind = set(staleness.stale_editions(stale))
    problems = []
    for (edition,), group in sites.filter(~pl.col("edition").is_in(list(behind))).group_by(
            "edition", maintain_order=True):
        ids = group["site_id"].to_list()
        log(f"edition {edition}: rescoring {len(ids)} site(s) scored with older rules or before their inputs changed")
        out = score_sites(ids, edition=int(edition), warehouse=wh, instance=instance)
        if not out.success:
            problems.append(f"edition {edition}: rescoring failed: " + "; ".join(out.failures.values()))
    return problems


def still_stale(warehouse: Path | str | None = None) -> list[str]:
    """What is still not current, one line per table x edition (empty: everything current)."""
    from radar_pipeline.rules import staleness

    stale, _allowed, _sites = _stale(warehouse or settings.warehouse_path())
    return staleness.describe(stale)
