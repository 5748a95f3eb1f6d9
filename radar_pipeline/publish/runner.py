"""Run the publish job from Python (tests, scripts, the CLI), like radar_pipeline.runner does for the others."""
from __future__ import annotations

from pathlib import Path

import dagster as dg

from radar_pipeline import lake, settings
from radar_pipeline.runner import QUIET, RunOutcome, _own_tags, reap_dead_runs, root_message
from radar_pipeline.warehouse import DuckDBWarehouse


def publish_warehouse(*, warehouse: Path | str | None = None,
                      instance: dg.DagsterInstance | None = None) -> RunOutcome:
    """Reload buyer lists and publish a new snapshot to RADAR_PUBLISHED (one in-process run)."""
    from radar_pipeline.definitions import defs

    instance = instance or dg.DagsterInstance.ephemeral()
    reap_dead_runs(instance)
    job = defs.resolve_job_def("publish_warehouse")
    resources = {"warehouse": DuckDBWarehouse(path=str(warehouse or settings.warehouse_path()))}
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
    import sys
    import time

    started = time.perf_counter()
    outcome = publish_warehouse(warehouse=warehouse, instance=instance)
    if not outcome.success:
        for step, message in outcome.failures.items():
            print(f"FAILED {step}: {message}", file=sys.stderr)
        print("Publishing failed; the previous BI snapshot (if any) is unchanged.", file=sys.stderr)
        return 1
    meta = publish_metadata(outcome)
    if lake.is_lake(warehouse or settings.warehouse_path()):
        print(f"Published lake snapshot {meta.get('snapshot_id')} at {meta.get('published_at')} "
              f"(no copy) in {time.perf_counter() - started:.1f}s; read it as published with "
              f"sql/examples/lake/scores_as_published.sql, or attach the lake read-only (docs/deploy.md)")
        return 0
    path = Path(meta.get("path") or settings.published_path())
    counts = meta.get("row_counts") or {}
    summary = ", ".join(f"{t} {n}" for t, n in counts.items() if t in (
        "country_risk", "inherent_risk", "site_scores_latest"))
    print(f"Published the BI snapshot in {time.perf_counter() - started:.1f}s -> {path}"
          + (f" ({summary})" if summary else ""))
    print("Open it (read-only) with:\n" + open_hint(path))
    return 0
