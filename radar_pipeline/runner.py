"""Run the project's jobs from Python (the CLI and the tests share this)."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from radar_pipeline import settings
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a recycled pid running something else is not our run
    try:
        return b"radar" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


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
        if pid and pid != os.getpid() and not _alive(pid):
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
    result = job.execute_in_process(partition_key=str(edition), run_config=run_config, instance=instance,
                                    resources=resources, raise_on_error=False, tags=_own_tags())
    failures = {e.step_key: root_message(e.step_failure_data.error)
                for e in result.all_events if e.is_step_failure}
    return RunOutcome(result.success, failures, result)


def score_sites(keys: list[str], *, edition: int = 0, warehouse: Path | str | None = None,
                instance: dg.DagsterInstance | None = None) -> RunOutcome:
    """Register `keys` as site partitions and score them in ONE run over their range."""
    from radar_pipeline.definitions import defs
    from radar_pipeline.partitions import sites
    from radar_pipeline.sites.assets import RANGE_END, RANGE_START, range_request

    instance = instance or dg.DagsterInstance.ephemeral()
    reap_dead_runs(instance)
    known = instance.get_dynamic_partitions(sites.name)
    known_set = set(known)  # built once: `in set(known)` inside the loop is O(n*m)
    new = [k for k in dict.fromkeys(keys) if k not in known_set]
    if new:
        instance.add_dynamic_partitions(sites.name, new)
    request = range_request([*known, *new], set(keys), edition=edition)
    job = defs.resolve_job_def("score_sites")
    resources = {"warehouse": DuckDBWarehouse(path=str(warehouse or settings.warehouse_path()))}
    result = job.execute_in_process(run_config={**QUIET, **request.run_config}, instance=instance,
                                    resources=resources,
                                    tags={RANGE_START: request.tags[RANGE_START],
                                          RANGE_END: request.tags[RANGE_END], **_own_tags()},
                                    raise_on_error=False)
    failures = {e.step_key: root_message(e.step_failure_data.error)
                for e in result.all_events if e.is_step_failure}
    return RunOutcome(result.success, failures, result)
