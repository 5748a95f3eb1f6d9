"""Dagster side of publishing: buyer lists, the published snapshot, its job and sensors.

`publish` only *reads* the warehouse and writes a separate file that is swapped
in atomically (see build.py); it is in pool duckdb_write all the same so it
never opens the warehouse while a run is writing it (a DuckDB reader cannot
open a file another process holds for writing).
"""

import json

import dagster as dg

from radar_pipeline import lake, settings
from radar_pipeline.country_risk.assets import POOL, country_topic_risk
from radar_pipeline.publish import build, buyers
from radar_pipeline.sectors.assets import inherent_risk_overall
from radar_pipeline.sites.assets import site_register, site_scores
from radar_pipeline.warehouse import DuckDBWarehouse

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
    context.log.info(f"{len(load.files)} buyer file(s) in {folder}: {load.rows.height} buyer-site rows for "
                     f"{len(load.buyers)} buyer(s), {load.rejects.height} rejected, "
                     f"{len(load.unknown_sites)} unknown site id(s)")
    yield dg.AssetCheckResult(
        check_name="buyer_sites_known", passed=not load.unknown_sites, severity=dg.AssetCheckSeverity.WARN,
        metadata={"unknown": ", ".join(f"{b}/{s}" for b, s in load.unknown_sites[:50]) or "none",
                  "n_unknown": len(load.unknown_sites)})
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": load.rows.height, "files": ", ".join(load.files) or "none",
        "buyers": len(load.buyers), "rejected": load.rejects.height,
        "reject_reasons": dg.MetadataValue.md("\n".join(
            f"- {r['file']}:{r['line']} {r['reason']}" for r in load.rejects.head(20).iter_rows(named=True))
            or "none")})


@dg.asset(
    group_name=GROUP, pool=POOL, kinds={"duckdb", "parquet", "sql"},
    deps=[dg.AssetDep(country_topic_risk, partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep(inherent_risk_overall, partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep(site_scores, partition_mapping=dg.AllPartitionMapping()),
          buyer_sites],
    description="BI-facing snapshot in a SEPARATE DuckDB file (RADAR_PUBLISHED, default "
                "data/published/radar.duckdb) + Parquet beside it, + one file per buyer with only its sites. "
                "Built under a temp name and renamed over the old file: readers (read-only) see one whole "
                "snapshot and never block the pipeline. Tables: sql/publish/*.sql, data_dictionary, "
                "publish_info; documented in docs/data_dictionary.md.",
)
def publish(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    target = settings.published_path()
    if lake.is_lake(warehouse.path):
        # A DuckLake warehouse is published by tagging its current snapshot (lake.publish); BI
        # tools read the lake itself, so the main file is not copied. The Parquet export and the
        # buyer files are cut from that tagged snapshot, whatever writers do meanwhile.
        with warehouse.get_connection() as con:
            info = lake.publish(con)
        context.log.info(f"tagged lake snapshot {info['snapshot_id']} as published at {info['published_at']}")
        result = build.publish(warehouse.path, target, log=context.log.info, lake_snapshot=info["snapshot_id"])
        return dg.MaterializeResult(metadata={
            "snapshot_id": info["snapshot_id"], "path": lake.parse(warehouse.path).display(),
            "published_at": info["published_at"], "row_counts": dg.MetadataValue.json(info["row_counts"]),
            "export_id": result.snapshot_id, "parquet": str(target.parent / "parquet"),
            "published_row_counts": dg.MetadataValue.json(result.row_counts),
            "buyers": dg.MetadataValue.json({b: c.get("site_scores_latest", 0) for b, c in result.buyers.items()}),
            "removed_buyer_files": ", ".join(result.removed_buyers) or "none"})
    result = build.publish(warehouse.path, target, log=context.log.info)
    return dg.MaterializeResult(metadata={
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


assets = [buyer_sites, publish]
jobs = [publish_job]
sensors = [buyers_inbox_sensor]
