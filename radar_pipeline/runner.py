"""Run the project's jobs from Python (the CLI and the tests share this)."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from radar_pipeline import lake, settings
from radar_pipeline.processes import pid_alive
from radar_pipeline.warehouse import DuckDBWarehouse

# Dagster's console logger prints one DEBUG line per partition event; INFO keeps
# the per-source progress lines and drops the per-site noise.
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


@dataclass
class RunOutcome:
    success: bool
    failures: dict[str, str]          # step key -> innermost error message
    result: dg.ExecuteInProcessResult


def root_message(err) -> str:
    """The user's error: Dagster wraps the user's exception in its own. Unwrap only
    Dagster's wrappers, so a SourceError/Failure keeps its "[source] file: reason"
    instead of being replaced by its low-level cause (UnicodeDecodeError, ConnectTimeout)."""
    while err is not None and err.cause is not None and (
            err.cls_name.startswith(("Dagster", "RetryRequested"))):
        err = err.cause
    return err.message.strip() if err is not None else "unknown error"


PID_TAG, HOST_TAG = "radar/pid", "radar/host"
LIVE_STATUSES = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def _own_tags() -> dict[str, str]:
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark runs whose `radar` process died (SIGKILL, OOM, power loss) as failed.

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
    from radar_pipeline.definitions import defs

    job = defs.resolve_job_def("refresh_edition")
    run_config = {**QUIET, "ops": {"country_topic_risk": {"config": {
        "allow_missing_topics": list(allow_missing_topics or [])}}}}
    resources = {"warehouse": DuckDBWarehouse(path=str(warehouse or settings.warehouse_path()))}
    instance = instance or dg.DagsterInstance.ephemeral()
    reap_dead_runs(instance)
    lake.apply_pool_limit(instance, resources["warehouse"].path)
    result = job.execute_in_process(partition_key=str(edition), run_config=run_config, instance=instance,
                                    resources=resources, raise_on_error=False, tags=_own_tags())
    failures = {e.step_key: root_message(e.step_failure_data.error)
                for e in result.all_events if e.is_step_failure}
    if result.success:
        lake.tag_target(resources["warehouse"].path, "refresh", f"refresh edition {edition}",
                        edition=edition, run_id=result.run_id)
    return RunOutcome(result.success, failures, result)


# Partition keys registered per add_dynamic_partitions call: the sqlite instance binds one
# SQL variable per key and fails somewhere between 249k and 251k keys in one call.
PARTITION_CHUNK = int(os.environ.get("RADAR_PARTITION_CHUNK", "10000"))
SQLITE_MS_PER_PARTITION = 27.0  # measured: bench/README.md, bench_partitions.py --instance sqlite


def is_sqlite_instance(instance: dg.DagsterInstance) -> bool:
    """The default instance (dagster.yaml) keeps its event log in sqlite (in memory when ephemeral)."""
    name = type(instance.event_log_storage).__name__.lower()
    return "sqlite" in name or "inmemory" in name


def sqlite_partition_warning(instance: dg.DagsterInstance, n_partitions: int) -> str | None:
    """The message to show before a run over `n_partitions` site partitions on the sqlite
    instance when there are more than RADAR_SQLITE_PARTITION_WARN (default 50k); None otherwise."""
    limit = int(os.environ.get("RADAR_SQLITE_PARTITION_WARN", "50000"))
    if n_partitions <= limit or not is_sqlite_instance(instance):
        return None
    minutes = n_partitions * SQLITE_MS_PER_PARTITION / 60_000
    return (f"{n_partitions} site partitions on the sqlite Dagster instance: about {minutes:.0f} min at the "
            f"measured {SQLITE_MS_PER_PARTITION:g} ms per partition (bench/README.md); PostgreSQL takes about "
            f"1 ms. To switch: copy dagster-postgres.yaml to $DAGSTER_HOME/dagster.yaml, set DAGSTER_PG_* "
            f"(or `eval \"$(bench/pg.sh start)\"`) and export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1 "
            f"DAGSTER_EVENT_BATCH_SIZE=1000 (README, 'Dagster instance'). Continuing on sqlite.")


def add_site_partitions(instance: dg.DagsterInstance, keys: list[str], chunk: int | None = None) -> None:
    """Register site partitions in calls of at most RADAR_PARTITION_CHUNK keys (any number works)."""
    from radar_pipeline.partitions import sites

    chunk = chunk or PARTITION_CHUNK
    for i in range(0, len(keys), chunk):
        instance.add_dynamic_partitions(sites.name, keys[i:i + chunk])


def score_sites(keys: list[str], *, edition: int = 0, warehouse: Path | str | None = None,
                instance: dg.DagsterInstance | None = None, only_stale: bool = False,
                run_chunk: int | None = None, log=None) -> RunOutcome:
    """Register `keys` as site partitions (in chunks) and score them: one run over their
    range, or one run per RADAR_RESCORE_CHUNK keys when there are more. only_stale: each
    run scores only the sites of its range whose current content has no score yet (not the
    unchanged sites between two changed ones)."""
    import sys

    from radar_pipeline.definitions import defs
    from radar_pipeline.partitions import sites
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
    resources = {"warehouse": DuckDBWarehouse(path=str(warehouse or settings.warehouse_path()))}
    lake.apply_pool_limit(instance, resources["warehouse"].path)
    success, failures, result = True, {}, None
    for request in requests:
        result = job.execute_in_process(run_config={**QUIET, **request.run_config}, instance=instance,
                                        resources=resources,
                                        tags={RANGE_START: request.tags[RANGE_START],
                                              RANGE_END: request.tags[RANGE_END], **_own_tags()},
                                        raise_on_error=False)
        success = success and result.success
        failures.update({e.step_key: root_message(e.step_failure_data.error)
                         for e in result.all_events if e.is_step_failure})
    if success and result is not None:
        lake.tag_target(resources["warehouse"].path, "scoring", f"score {len(set(keys))} site(s)"
                        + (f" for edition {edition}" if edition else ""), edition=edition, run_id=result.run_id)
    return RunOutcome(success, failures, result)
