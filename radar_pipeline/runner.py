"""Run the project's jobs from Python (the CLI and the tests share this)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from radar_pipeline import settings
from radar_pipeline.warehouse import DuckDBWarehouse


@dataclass
class RunOutcome:
    success: bool
    failures: dict[str, str]          # step key -> innermost error message
    result: dg.ExecuteInProcessResult


def root_message(err) -> str:
    """The innermost cause: Dagster wraps the user's exception in its own."""
    while err is not None and err.cause is not None:
        err = err.cause
    return err.message.strip() if err is not None else "unknown error"


def refresh_edition(edition: int, *, allow_missing_topics: list[str] | None = None,
                    warehouse: Path | str | None = None,
                    instance: dg.DagsterInstance | None = None) -> RunOutcome:
    from radar_pipeline.definitions import defs

    job = defs.resolve_job_def("refresh_edition")
    run_config = {"ops": {"country_topic_risk": {"config": {
        "allow_missing_topics": list(allow_missing_topics or [])}}}}
    resources = {"warehouse": DuckDBWarehouse(path=str(warehouse or settings.warehouse_path()))}
    result = job.execute_in_process(partition_key=str(edition), run_config=run_config,
                                    instance=instance or dg.DagsterInstance.ephemeral(),
                                    resources=resources, raise_on_error=False)
    failures = {e.step_key: root_message(e.step_failure_data.error)
                for e in result.all_events if e.is_step_failure}
    return RunOutcome(result.success, failures, result)
