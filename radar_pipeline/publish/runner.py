"""Run the publish job from Python (tests, scripts), like radar_pipeline.runner does for the others."""
from __future__ import annotations

from pathlib import Path

import dagster as dg

from radar_pipeline import settings
from radar_pipeline.runner import QUIET, RunOutcome, root_message
from radar_pipeline.warehouse import DuckDBWarehouse


def publish_warehouse(*, warehouse: Path | str | None = None,
                      instance: dg.DagsterInstance | None = None) -> RunOutcome:
    """Reload buyer lists and publish a new snapshot to RADAR_PUBLISHED (one in-process run)."""
    from radar_pipeline.definitions import defs

    job = defs.resolve_job_def("publish_warehouse")
    resources = {"warehouse": DuckDBWarehouse(path=str(warehouse or settings.warehouse_path()))}
    result = job.execute_in_process(run_config=QUIET, instance=instance or dg.DagsterInstance.ephemeral(),
                                    resources=resources, raise_on_error=False)
    failures = {e.step_key: root_message(e.step_failure_data.error)
                for e in result.all_events if e.is_step_failure}
    return RunOutcome(result.success, failures, result)
