"""Dagster side of publishing: buyer lists, the published snapshot, its job and sensors.

`publish` only *reads* the warehouse and writes a separate file that is swapped
in atomically (see build.py); it is in pool duckdb_write all the same so it
never opens the warehouse while a run is writing it (a DuckDB reader cannot
open a file another process holds for writing).
"""

import json

import dagster as dg
import duckdb

from radar_pipeline.country_risk.assets import POOL, country_topic_risk
from radar_pipeline.platform import lake, lake_commits, settings
from radar_pipeline.platform.warehouse import DuckDBWarehouse
from radar_pipeline.publish import build, buyers
from radar_pipeline.sectors.assets import inherent_risk_overall
from radar_pipeline.sites.assets import site_register, site_scores

GROUP = "publish"


@dg.asset(group_name=GROUP, pool=POOL, kinds={"duckdb"}, deps=[site_register],
          description="Which sites each buyer sees: every *.csv / *.jsonl (buyer_id, site_id) in "
                      "RADAR_BUYERS_INBOX (default data/buyers), validated (ids ^[A-Za-z0-9._-]{1,64}$). "
                      "Replaces tables buyer_sites and buyer_site_rejects as a whole.",
          metadata={"dagster/table_name": "buyer_sites"},
          check_specs=[dg.AssetCheckSpec("buyer_sites_known", asset="buyer_sites",
                                         description="Every listed site_id is a known site (WARN: unknown "
                                                     "ones are kept, they may arrive later)")])
def buyer_sites(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse):
    folder = settings.buyers_inbox()
    with warehouse.get_connection() as con:
        load = buyers.load(con, folder)
    context.log.info(f"{len(load.files)} buyer file(s) in {folder}: {load.n_rows} buyer-site rows for "
                     f"{len(load.buyers)} buyer(s), {load.rejects.height} rejected, "
                     f"{load.n_unknown} unknown site id(s)")
    yield dg.AssetCheckResult(
        check_name="buyer_sites_known", passed=not load.unknown_sites, severity=dg.AssetCheckSeverity.WARN,
        metadata={"unknown": ", ".join(f"{b}/{s}" for b, s in load.unknown_sites[:50]) or "none",
                  "n_unknown": load.n_unknown})
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": load.n_rows, "files": ", ".join(load.files) or "none",
        "buyers": len(load.buyers), "rejected": load.rejects.height,
        "reject_reasons": dg.MetadataValue.md("\n".join(
            f"- {r['file']}:{r['line']} {r['reason']}" for r in load.rejects.head(20).iter_rows(named=True))
            or "none")})


# The sites whose latest score predates the latest edition's inherent stage, one row each
# (sql/warehouse/sites_behind.sql, which says which sites count)
SITES_BEHIND_FILE = settings.SQL_DIR / "warehouse" / "sites_behind.sql"


def sites_behind(con: duckdb.DuckDBPyConnection) -> tuple[int | None, object, int, list[str]]:
    """(latest edition, when its inherent stage was computed, number of sites whose latest score
    is older than that, the first few of them); (None, None, 0, []) when none is behind or the
    warehouse has no such tables yet."""
    try:
        edition, computed_at, n, first = con.execute(
            "select any_value(edition), any_value(computed_at), count(*), list(site_id order by site_id)[1:5] "
            f"from ({SITES_BEHIND_FILE.read_text(encoding='utf-8')})").fetchall()[0]
    except duckdb.CatalogException:
        return None, None, 0, []
    return edition, computed_at, int(n or 0), list(first or [])


def behind_site_ids(con: duckdb.DuckDBPyConnection) -> tuple[int | None, object, list[str]]:
    """(latest edition, when its inherent stage was computed, every site behind it, by site_id)."""
    try:
        rows = con.execute(SITES_BEHIND_FILE.read_text(encoding="utf-8")).fetchall()
    except duckdb.CatalogException:
        return None, None, []
    return (rows[0][0], rows[0][1], [r[2] for r in rows]) if rows else (None, None, [])


class PublishConfig(dg.Config):
    # True: publish even while some sites' scores predate the latest edition's inherent risk
    # (a snapshot mixing editions; the edition_status table says which editions are current)
    allow_stale_sites: bool = False


@dg.asset(
    group_name=GROUP, pool=POOL, kinds={"duckdb", "parquet", "sql"},
    deps=[dg.AssetDep(country_topic_risk, partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep(inherent_risk_overall, partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep(site_scores, partition_mapping=dg.AllPartitionMapping()),
          buyer_sites],
    output_required=False,
    description="BI-facing snapshot in a SEPARATE DuckDB file (RADAR_PUBLISHED, default "
                "data/published/radar.duckdb) + Parquet beside it, + one file per buyer with only its sites. "
                "Built under a temp name and renamed over the old file: readers (read-only) see one whole "
                "snapshot and never block the pipeline. Tables: sql/publish/*.sql, data_dictionary, "
                "publish_info; documented in docs/data_dictionary.md. Not published (the step succeeds "
                "without a materialization, saying why) while some site's latest score predates the latest "
                "edition's inherent risk: the rescoring a refresh triggers publishes when it is done.",
)
def publish(context: dg.AssetExecutionContext, config: PublishConfig, warehouse: DuckDBWarehouse):
    target = settings.published_path()
    with warehouse.get_connection(read_only=True) as con:
        edition, refreshed_at, n_behind, first = sites_behind(con)
    if n_behind:
        why = (f"{n_behind} site(s) (e.g. {', '.join(first)}) were last scored before edition {edition}'s "
               f"inherent risk was computed ({refreshed_at:%Y-%m-%d %H:%M:%S} UTC)")
        if not config.allow_stale_sites:
            context.log.warning(f"not published: {why}; a snapshot now would mix edition {edition}'s risk with "
                                f"older site scores. The rescoring that follows a refresh publishes when it is "
                                f"done (`radar score --all` without a daemon; config allow_stale_sites "
                                f"publishes anyway). The previous snapshot stays in place.")
            return
        context.log.warning(f"publishing although {why} (allow_stale_sites)")
    if lake.is_lake(warehouse.path):
        # A DuckLake warehouse is published by tagging its current snapshot (lake_commits.publish); BI
        # tools read the lake itself, so the main file is not copied. The Parquet export and the
        # buyer files are cut from that tagged snapshot, whatever writers do meanwhile.
        with warehouse.get_connection() as con:
            info = lake_commits.publish(con)
        context.log.info(f"tagged lake snapshot {info['snapshot_id']} as published at {info['published_at']}")
        result = build.publish(warehouse.path, target, log=context.log.info, lake_snapshot=info["snapshot_id"])
        yield dg.MaterializeResult(metadata={
            "snapshot_id": info["snapshot_id"], "path": lake.parse(warehouse.path).display(),
            "published_at": info["published_at"], "row_counts": dg.MetadataValue.json(info["row_counts"]),
            "export_id": result.snapshot_id, "parquet": str(target.parent / "parquet"),
            "published_row_counts": dg.MetadataValue.json(result.row_counts),
            "buyers": dg.MetadataValue.json({b: c.get("site_scores_latest", 0) for b, c in result.buyers.items()}),
            "removed_buyer_files": ", ".join(result.removed_buyers) or "none"})
        return
    result = build.publish(warehouse.path, target, log=context.log.info)
    yield dg.MaterializeResult(metadata={
        "snapshot_id": result.snapshot_id, "path": str(result.path),
        "row_counts": dg.MetadataValue.json(result.row_counts),
        "buyers": dg.MetadataValue.json({b: c.get("site_scores_latest", 0) for b, c in result.buyers.items()}),
        "removed_buyer_files": ", ".join(result.removed_buyers) or "none",
    })


publish_job = dg.define_asset_job(
    "publish_warehouse", selection=[buyer_sites, publish], executor_def=dg.in_process_executor,
    description="Reload the buyer lists and publish the BI snapshot (main file, Parquet, buyer files).")


@dg.sensor(job=publish_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Republishes when a buyer list in RADAR_BUYERS_INBOX is added, changed or removed.")
def buyers_inbox_sensor(context: dg.SensorEvaluationContext):
    folder = settings.buyers_inbox()
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".jsonl")) \
        if folder.is_dir() else []
    state = {p.name: f"{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files}
    previous = json.loads(context.cursor) if context.cursor else None
    if previous == state or (previous is None and not state):
        return dg.SensorResult(skip_reason=f"no change in {folder}", cursor=json.dumps(state))
    return dg.SensorResult(run_requests=[dg.RunRequest()], cursor=json.dumps(state))


# --- closing snapshot tags on a DuckLake ------------------------------------------------------

REFRESH_JOB = "refresh_edition"


def closing_tag(run: dg.DagsterRun) -> tuple[str, str, dict] | None:
    """(kind, message, extra) of the closing snapshot tag a finished run gets on a lake: `scoring`
    for a run that scored sites, `refresh` for one that refreshed an edition (the refresh job, or
    an asset run of its assets from the UI); None for the rest (publish tags itself)."""
    from radar_pipeline.country_risk import assets as country_risk
    from radar_pipeline.country_risk import coverage
    from radar_pipeline.sectors import assets as sectors
    from radar_pipeline.sites.assets import RANGE_END, RANGE_START, SCORING_JOBS

    selected = {k.to_user_string() for k in (run.asset_selection or ())}
    partition = run.tags.get("dagster/partition")
    if run.job_name in SCORING_JOBS or "site_scores" in selected:
        start, end = run.tags.get(RANGE_START), run.tags.get(RANGE_END)
        where = f" {start}..{end}" if start else (f" {partition}" if partition else "")
        return "scoring", f"score sites{where}", {"range_start": start, "range_end": end or partition}
    # the refresh job's edition assets (radar_pipeline/definitions.py selects the same lists)
    refresh_assets = {k.to_user_string() for a in (
        *country_risk.source_assets, country_risk.countries, country_risk.indicator_scores,
        country_risk.country_topic_risk, coverage.coverage_report, *sectors.edition_assets) for k in a.keys}
    if run.job_name == REFRESH_JOB or (selected & refresh_assets and partition):
        return "refresh", f"refresh edition {partition}", {"edition": int(partition) if partition else None}
    return None


def tag_finished_run(instance: dg.DagsterInstance, run: dg.DagsterRun, warehouse: str) -> int | None:
    """Give a successful refresh or scoring run its closing tag on the lake `warehouse` (its last
    own snapshot, lake_commits.tag_run); None when it is not one, or the warehouse is a DuckDB file."""
    what = closing_tag(run) if lake.is_lake(warehouse) else None
    if what is None:
        return None
    kind, message, extra = what
    stats = instance.get_run_stats(run.run_id)
    return lake_commits.tag_run(warehouse, run.run_id, kind, message, ended_at=stats.end_time, **extra)


def run_warehouse(run: dg.DagsterRun) -> str:
    """The warehouse a run used: its launchpad resource config, else the definitions' default."""
    config = ((run.run_config or {}).get("resources", {}).get("warehouse", {}) or {}).get("config") or {}
    return str(config.get("database") or settings.warehouse_path())


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS, default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="On a DuckLake warehouse: gives every successful edition refresh and scoring run launched "
                "from the UI, a schedule or a sensor its closing named snapshot (a `refresh` / `scoring` row "
                "in snapshot_tags naming the last snapshot the run wrote), as `radar` does for its own runs.")
def lake_snapshot_tag_sensor(context: dg.RunStatusSensorContext):
    warehouse = run_warehouse(context.dagster_run)
    if not lake.is_lake(warehouse):
        return dg.SkipReason("the warehouse is a DuckDB file: no snapshots to tag")
    sid = tag_finished_run(context.instance, context.dagster_run, warehouse)
    if sid is None:
        return dg.SkipReason(f"run {context.dagster_run.run_id} is neither a refresh nor a scoring run")
    context.log.info(f"tagged lake snapshot {sid} for run {context.dagster_run.run_id}")
    return None


assets = [buyer_sites, publish]
jobs = [publish_job]
sensors = [buyers_inbox_sensor, lake_snapshot_tag_sensor]
