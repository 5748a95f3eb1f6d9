"""Sites as Dagster partitions: intake sensor, one-run bulk scoring, rescoring after a refresh.

Why one run for many partitions: a run per site costs ~7 s of Dagster overhead
(10k sites ~ 19 h), while the scoring SQL for 10k sites takes < 1 s. So the
scoring asset has BackfillPolicy.single_run() and scores its whole partition
key range with one set-based SQL pass; the sensor and the post-refresh sensor
request ranges, never one run per site.
"""
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from radar_pipeline.country_risk.assets import POOL
from radar_pipeline.partitions import sites as sites_partitions
from radar_pipeline.sectors.assets import inherent_risk_overall
from radar_pipeline.sites import store
from radar_pipeline.warehouse import DuckDBWarehouse, declared_table_schema

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


class SiteScoringConfig(dg.Config):
    edition: int = 0  # 0 = the latest edition that has inherent risk


@dg.asset(
    group_name="sites", pool=POOL, partitions_def=sites_partitions, kinds={"duckdb", "sql"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[dg.AssetDep(inherent_risk_overall, partition_mapping=dg.AllPartitionMapping())],
    description="Score per supplier site (METHODOLOGY §6-§9): inherent risk of its country x ISIC class, "
                "site characteristics from the SAQ, management controls, open audit findings -> final "
                "score 0-10 and category. Writes site_scores and the explanation rows site_score_factors "
                "for the run's whole partition range in one SQL pass (sql/sites/*.sql).",
    metadata={"dagster/table_name": "site_scores",
              "dagster/column_schema": declared_table_schema("site_scores")},
    check_specs=[dg.AssetCheckSpec("every_site_scored", asset="site_scores",
                                   description="Every site in the run got a final score (inherent risk found "
                                               "for its country x ISIC class)")],
)
def site_scores(context: dg.AssetExecutionContext, config: SiteScoringConfig, warehouse: DuckDBWarehouse):
    keys = context.partition_keys
    started = _now()
    edition = None
    try:
        with warehouse.get_connection() as con:
            edition = config.edition or store.latest_edition(con)
            context.log.info(f"scoring {len(keys)} site partition(s) for edition {edition} in one pass")
            scores = store.score_and_store(con, edition, keys)
            _record_run(con, context.run.run_id, edition, keys, "success", None, started)
    except Exception as exc:
        with warehouse.get_connection() as con:
            _record_run(con, context.run.run_id, edition, keys, "failure", f"{type(exc).__name__}: {exc}"[:2000],
                        started)
        raise
    unscored = scores.filter(scores["final_score"].is_null())["site_id"].to_list()
    missing = sorted(set(keys) - set(scores["site_id"].to_list()))
    yield dg.AssetCheckResult(
        check_name="every_site_scored", passed=not unscored and not missing,
        metadata={"unscored": ", ".join(unscored[:50]) or "none",
                  "partitions_without_site_row": ", ".join(missing[:50]) or "none"})
    # Dagster copies this metadata into every partition's materialization event:
    # keep it to a few small values (the column schema is on the definition), or
    # a 100k-site run writes 100k copies of it. Run-level figures go to the log.
    by_category = dict(scores.group_by("category").len().iter_rows())
    context.log.info(f"edition {edition}: {scores.height} sites scored; by category {by_category}; "
                     f"{int(scores['inherent_only'].sum() or 0)} inherent-only")
    yield dg.MaterializeResult(metadata={"edition": edition, "sites_in_run": scores.height})


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _record_run(con, run_id: str, edition, keys: list[str], status: str, error, started) -> None:
    con.execute("insert into site_scoring_runs values ($r, $e, $a, $b, $n, $s, $err, $t0, $t1)",
                {"r": run_id, "e": edition, "a": keys[0] if keys else None, "b": keys[-1] if keys else None,
                 "n": len(keys), "s": status, "err": error, "t0": started, "t1": _now()})


score_sites_job = dg.define_asset_job(
    "score_sites", selection=[site_scores], executor_def=dg.in_process_executor,
    description="Score a range of site partitions in one run (the UI's backfill uses the same policy).")


def inbox_dir() -> Path:
    return Path(os.environ.get("RADAR_SITES_INBOX", "data/inbox"))


# Rescoring everything is split into runs of this many sites: each run is cheap
# to re-execute if it fails, and Dagster's per-partition event rows stay bounded per run.
RESCORE_CHUNK = int(os.environ.get("RADAR_RESCORE_CHUNK", "50000"))


def range_request(keys_in_order: list[str], wanted: set[str], edition: int = 0,
                  run_key: str | None = None) -> dg.RunRequest | None:
    """One RunRequest covering every wanted key: Dagster runs take a contiguous
    partition range, so this is the smallest range that holds them (sites in
    between are rescored idempotently — same inputs, same score)."""
    positions = [i for i, k in enumerate(keys_in_order) if k in wanted]
    if not positions:
        return None
    return dg.RunRequest(
        run_key=run_key, job_name="score_sites",
        run_config={"ops": {"site_scores": {"config": {"edition": edition}}}},
        tags={RANGE_START: keys_in_order[positions[0]], RANGE_END: keys_in_order[positions[-1]]})


@dg.sensor(job=score_sites_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Watches RADAR_SITES_INBOX for new or changed *.jsonl files: validates every line, "
                       "stores valid sites (rejects with reasons in site_rejects), registers new site "
                       "partitions and requests ONE scoring run for the new/changed sites.")
def site_inbox_sensor(context: dg.SensorEvaluationContext, warehouse: DuckDBWarehouse):
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    inbox = inbox_dir()
    files = sorted(p for p in inbox.glob("*.jsonl") if p.is_file()) if inbox.is_dir() else []
    pending = [p for p in files if seen.get(p.name) != f"{p.stat().st_size}:{p.stat().st_mtime_ns}"]
    if not pending:
        return dg.SkipReason(f"no new or changed files in {inbox}")
    to_score: list[str] = []
    events = []
    with warehouse.get_connection() as con:
        for path in pending:
            summary = store.ingest(con, path)
            seen[path.name] = f"{path.stat().st_size}:{path.stat().st_mtime_ns}"
            to_score.extend(summary.to_score)
            context.log.info(f"{path.name}: {len(summary.new)} new, {len(summary.changed)} changed, "
                             f"{summary.unchanged} unchanged, {summary.rejected} rejected")
            events.append(dg.AssetMaterialization(
                asset_key="site_register", description=f"intake of {path.name}",
                metadata={"file": path.name, "sha256": summary.file_sha256, "new": len(summary.new),
                          "changed": len(summary.changed), "unchanged": summary.unchanged,
                          "rejected": summary.rejected}))
    known = context.instance.get_dynamic_partitions(sites_partitions.name)
    known_set = set(known)  # built once: `in set(known)` inside the loop is O(n*m)
    new_keys = [k for k in dict.fromkeys(to_score) if k not in known_set]
    order = [*known, *new_keys]
    request = range_request(order, set(to_score), run_key=None)
    return dg.SensorResult(
        run_requests=[request] if request else [],
        dynamic_partitions_requests=[sites_partitions.build_add_request(new_keys)] if new_keys else [],
        asset_events=events, cursor=json.dumps(seen))


site_register = dg.AssetSpec(
    "site_register", group_name="sites", kinds={"duckdb"},
    description="Latest accepted state of every site (tables sites, site_saq, site_controls, "
                "site_nonconformities; history in site_history, rejects in site_rejects). Written by "
                "site_inbox_sensor or `radar sites ingest`.",
    metadata={"dagster/table_name": "sites"})


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, request_job=score_sites_job,
                      default_status=dg.DefaultSensorStatus.RUNNING, name="rescore_after_refresh",
                      description="After a successful edition refresh, rescore every site for that "
                                  "edition in one run.")
def rescore_after_refresh(context: dg.RunStatusSensorContext):
    if context.dagster_run.job_name != "refresh_edition":
        return dg.SkipReason("not an edition refresh")
    edition = int(context.dagster_run.tags.get("dagster/partition", 0) or 0)
    keys = context.instance.get_dynamic_partitions(sites_partitions.name)
    if not keys:
        return dg.SkipReason("no sites registered yet")
    chunks = [keys[i:i + RESCORE_CHUNK] for i in range(0, len(keys), RESCORE_CHUNK)]
    return [range_request(chunk, set(chunk), edition=edition,
                          run_key=f"rescore-{context.dagster_run.run_id}-{n}")
            for n, chunk in enumerate(chunks)]
