"""Sites as Dagster partitions: intake sensor, one-run bulk scoring, rescoring after a refresh.

Why one run for many partitions: a run per site costs ~7 s of Dagster overhead
(10k sites ~ 19 h), while the scoring SQL for 10k sites takes < 1 s. So the
scoring asset has BackfillPolicy.single_run() and scores its whole partition
key range with one set-based SQL pass; the sensor and the post-refresh sensor
request ranges, never one run per site.
"""
import contextlib
import hashlib
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb

from radar_pipeline.country_risk.assets import POOL
from radar_pipeline.platform.partitions import sites as sites_partitions
from radar_pipeline.platform.processes import claimed_by_others
from radar_pipeline.platform.warehouse import DuckDBWarehouse, declared_table_schema
from radar_pipeline.rules import fingerprint
from radar_pipeline.sectors.assets import inherent_risk_overall
from radar_pipeline.sites import store

LOCK_WAIT_SENSOR = 20.0  # seconds a sensor tick waits for the warehouse write lock
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


class SiteScoringConfig(dg.Config):
    edition: int = 0  # 0 = the latest edition that has inherent risk
    # True (inbox sensor, `radar sites ingest`): score only the range's sites whose current
    # content has no score for the edition yet, not the unchanged sites between two changed ones
    only_stale: bool = False


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
    # §8c: a rule or SQL edit changes it, so the UI shows the scores stale until rescored
    code_version=fingerprint.version("site"),
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
            if config.only_stale:
                # stale: changed since its last score, or its category disagrees with today's overrides
                stale = set(store.stale_sites(con, edition)) | set(
                    store.override_drift(con, edition)["site_id"].to_list())
                # ... and not claimed by another ingest still running (processes.claim): in flight
                stale -= set(claimed_by_others(warehouse.path))
                in_range = len(keys)
                keys = [k for k in keys if k in stale]
                context.log.info(f"{in_range - len(keys)} of the range's {in_range} site(s) already scored "
                                 f"for their current content: left alone")
            context.log.info(f"scoring {len(keys)} site partition(s) for edition {edition} in one pass")
            scores = store.score_and_store(con, edition, keys)
            # §8b: bad override rows were left out (good ones applied); say where and why
            from radar_pipeline.sites.overrides import reject_lines  # polars: loaded by the run, not the definitions
            for line in reject_lines(store.override_rejects(con)):
                context.log.warning(line)
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
    return datetime.now(UTC).replace(tzinfo=None)


def _record_run(con, run_id: str, edition, keys: list[str], status: str, error, started) -> None:
    con.execute("insert into site_scoring_runs values ($r, $e, $a, $b, $n, $s, $err, $t0, $t1)",
                {"r": run_id, "e": edition, "a": keys[0] if keys else None, "b": keys[-1] if keys else None,
                 "n": len(keys), "s": status, "err": error, "t0": started, "t1": _now()})


score_sites_job = dg.define_asset_job(
    "score_sites", selection=[site_scores], executor_def=dg.in_process_executor,
    description="Score a range of site partitions in one run (the UI's backfill uses the same policy).")

# What the inbox sensor launches: the scores AND the BI snapshot in one run. Publishing through
# the automation sensor instead costs a second hop (its tick wait + a second run process start,
# ~20 s of a 2000-site inbox -> published latency). The publish step is skipped when scoring
# fails; the publish asset's automation condition does not fire again after this run (publish
# is updated after site_scores, which resets its "since last handled").
# Selected by key: the publish assets import this module.
score_and_publish_job = dg.define_asset_job(
    "score_and_publish", selection=dg.AssetSelection.assets("site_scores", "publish"),
    executor_def=dg.in_process_executor,
    description="Score the inbox's new/changed sites (one run for the range) and publish the BI snapshot "
                "right after, in the same run (what site_inbox_sensor launches).")
SCORING_JOBS = (score_sites_job.name, score_and_publish_job.name)


def inbox_dir() -> Path:
    return Path(os.environ.get("RADAR_SITES_INBOX", "data/inbox"))


# Rescoring everything is split into runs of this many sites: each run is cheap
# to re-execute if it fails, and Dagster's per-partition event rows stay bounded per run.
RESCORE_CHUNK = int(os.environ.get("RADAR_RESCORE_CHUNK", "50000"))


def range_request(keys_in_order: list[str], wanted: set[str], edition: int = 0,
                  run_key: str | None = None, only_stale: bool = False,
                  job_name: str = "score_sites") -> dg.RunRequest | None:
    """One RunRequest covering every wanted key: Dagster runs take a contiguous
    partition range, so this is the smallest range that holds them (with only_stale the
    sites in between are left alone; without, they are rescored idempotently)."""
    positions = [i for i, k in enumerate(keys_in_order) if k in wanted]
    if not positions:
        return None
    return dg.RunRequest(
        run_key=run_key, job_name=job_name,
        run_config={"ops": {"site_scores": {"config": {"edition": edition, "only_stale": only_stale}}}},
        tags={RANGE_START: keys_in_order[positions[0]], RANGE_END: keys_in_order[positions[-1]]})


def range_requests(keys_in_order: list[str], wanted: set[str], edition: int = 0, only_stale: bool = False,
                   chunk: int | None = None, run_key_prefix: str | None = None,
                   last_job: str = "score_sites") -> list[dg.RunRequest]:
    """Range requests of at most `chunk` (RADAR_RESCORE_CHUNK) wanted keys each, in partition
    order: a run over any number of sites stays within what the instance handles per run.
    The last one runs `last_job` (the inbox sensor: score_and_publish, so a file is published
    once, not once per chunk; a chunk that finishes after it is published by automation)."""
    chunk = chunk or RESCORE_CHUNK
    ordered = [k for k in keys_in_order if k in wanted]
    groups = [ordered[i:i + chunk] for i in range(0, len(ordered), chunk)]
    requests = []
    for n, group in enumerate(groups):
        request = range_request(group, set(group), edition=edition, only_stale=only_stale,
                                run_key=f"{run_key_prefix}-{n}" if run_key_prefix else None,
                                job_name=last_job if n == len(groups) - 1 else "score_sites")
        if request:
            requests.append(request)
    return requests


# Inbox -> published within 30 s (issue 12) leaves little for the tick wait: a tick every 5 s.
# A tick with nothing new only lists the inbox and asks the run storage one indexed question
# (no warehouse connection, so it never competes for the DuckDB write lock).
INBOX_TICK_SECONDS = int(os.environ.get("RADAR_INBOX_TICK_SECONDS", "5"))
# ... and looks for stored-but-unscored sites (a killed intake) at most this often
RESUME_CHECK_SECONDS = 60


def loop_aligned(seconds: int) -> int:
    """The minimum interval to declare for a sensor meant to tick every `seconds`. The daemon
    looks at its sensors every 5 s and skips one whose last tick is less than its minimum
    interval ago; a tick every 5 s declared as 5 lands on that boundary and is skipped every
    other time (measured: the inbox sensor ticked every 10.0 s). One second less keeps the
    period the user asked for."""
    return max(1, seconds - 1)


def _read_cursor(cursor: str | None) -> tuple[dict[str, str], float]:
    """(file name -> size:mtime seen, time of the last unscored-sites check). Before the resume
    check had a cadence the cursor was the file map alone: read as such (checked 'never')."""
    data = json.loads(cursor) if cursor else {}
    if isinstance(data.get("files"), dict):
        return data["files"], float(data.get("resume_checked_at", 0))
    return data, 0.0


@dg.sensor(jobs=[score_sites_job, score_and_publish_job], minimum_interval_seconds=loop_aligned(INBOX_TICK_SECONDS),
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Watches RADAR_SITES_INBOX for new or changed *.jsonl files: validates every line, "
                       "stores valid sites (rejects with reasons in site_rejects), registers new site "
                       "partitions and requests ONE run that scores the new/changed sites and publishes "
                       "the BI snapshot.")
def site_inbox_sensor(context: dg.SensorEvaluationContext, warehouse: DuckDBWarehouse):
    seen, resume_checked_at = _read_cursor(context.cursor)
    inbox = inbox_dir()
    listed = sorted(inbox.glob("*.jsonl")) if inbox.is_dir() else []
    # a symlink is not followed (it could point at any file on the server, whose lines would be
    # echoed into reject reasons): said once per link, like the buyers inbox does
    links = [p for p in listed if p.is_symlink() and seen.get(p.name) != "symlink"]
    for link in links:
        context.log.warning(f"{link.name}: a symlink, not followed; put the file itself in {inbox}")
        seen[link.name] = "symlink"
    files = [p for p in listed if p.is_file() and not p.is_symlink()]
    pending = [p for p in files if seen.get(p.name) != _stat_key(p)]
    # sites stored but never scored (a tick or a `radar sites ingest` killed between storing and
    # scoring) are looked for when no scoring run is queued or running, with every new file and
    # otherwise every RESUME_CHECK_SECONDS
    busy = _scoring_in_progress(context.instance)
    if links and not pending:  # remember the links, so each is reported once
        cursor = json.dumps({"files": seen, "resume_checked_at": resume_checked_at})
        return dg.SensorResult(skip_reason=f"{len(links)} symlink(s) in {inbox} not followed", cursor=cursor)
    if not pending and busy:
        return dg.SkipReason(f"no new or changed files in {inbox}; a scoring run is in progress")
    now = time.time()
    if not pending and now - resume_checked_at < RESUME_CHECK_SECONDS:
        return dg.SkipReason(f"no new or changed files in {inbox}")
    to_score: list[str] = []
    events = []
    with contextlib.ExitStack() as stack:
        try:
            # a refresh or scoring run may hold the write lock for minutes: skip this tick rather
            # than outlive the sensor's time limit; the next tick tries again
            con = stack.enter_context(warehouse.get_connection(wait_seconds=LOCK_WAIT_SENSOR))
        except duckdb.IOException as exc:
            return dg.SkipReason(f"warehouse busy, trying again at the next tick: {str(exc)[:300]}")
        for path in pending:
            try:
                summary = store.ingest(con, path)
            except Exception as exc:  # noqa: BLE001 — one unreadable file must not fail every tick
                context.log.error(f"{path.name}: not ingested ({type(exc).__name__}: {str(exc)[:500]}); "
                                  f"fix or replace the file to retry")
                seen[path.name] = _stat_key(path)
                continue
            seen[path.name] = _stat_key(path)
            to_score.extend(summary.to_score)
            context.log.info(f"{path.name}: {len(summary.new)} new, {len(summary.changed)} changed, "
                             f"{summary.unchanged} unchanged, {summary.rejected} rejected")
            events.append(dg.AssetMaterialization(
                asset_key="site_register", description=f"intake of {path.name}",
                metadata={"file": path.name, "sha256": summary.file_sha256, "new": len(summary.new),
                          "changed": len(summary.changed), "unchanged": summary.unchanged,
                          "rejected": summary.rejected}))
        if not busy:
            resume_checked_at = now
            try:
                just_stored = set(to_score)
                store.latest_edition(con)  # raises when no edition is refreshed yet
                # never scored since stored: a site only lacking a score for a newly refreshed
                # edition is site_scores' automation condition's, not requested twice
                resumed = [k for k in store.stale_sites(con, None) if k not in just_stored]
            except RuntimeError:  # no edition refreshed yet: nothing can be scored
                resumed = []
            if resumed:
                context.log.warning(f"{len(resumed)} site(s) stored earlier but not scored for their current "
                                    f"content (an interrupted intake or run): requesting their scoring")
                to_score.extend(resumed)
    cursor = json.dumps({"files": seen, "resume_checked_at": resume_checked_at})
    if not to_score and not events:
        return dg.SensorResult(skip_reason=f"no new or changed files in {inbox} and no unscored sites",
                               cursor=cursor)
    known = context.instance.get_dynamic_partitions(sites_partitions.name)
    known_set = set(known)  # built once: `in set(known)` inside the loop is O(n*m)
    new_keys = [k for k in dict.fromkeys(to_score) if k not in known_set]
    order = [*known, *new_keys]
    from radar_pipeline.platform.partitions import PARTITION_CHUNK, sqlite_partition_warning

    warning = sqlite_partition_warning(context.instance, len(set(to_score)))
    if warning:
        context.log.warning(warning)
    return dg.SensorResult(
        run_requests=range_requests(order, set(to_score), only_stale=True, last_job=score_and_publish_job.name),
        dynamic_partitions_requests=[sites_partitions.build_add_request(new_keys[i:i + PARTITION_CHUNK])
                                     for i in range(0, len(new_keys), PARTITION_CHUNK)],
        asset_events=events, cursor=cursor)


# The overrides folder is looked at this often; a tick with an unchanged folder on the same day
# only lists it (no warehouse connection).
OVERRIDES_TICK_SECONDS = int(os.environ.get("RADAR_OVERRIDES_TICK_SECONDS", "30"))


def overrides_state() -> str:
    """What the overrides sensor compares between ticks: every *.csv of RADAR_OVERRIDES by name,
    size and modification time, plus today's date — an override expires the day after its
    `expires_on` with no file changing (a daily condition)."""
    from datetime import date

    from radar_pipeline.platform import settings

    folder = settings.overrides_dir()
    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    listing = "|".join(f"{p.name}:{_stat_key(p)}" for p in files)
    return json.dumps({"day": date.today().isoformat(), "files": listing})


@dg.sensor(jobs=[score_sites_job, score_and_publish_job], minimum_interval_seconds=loop_aligned(OVERRIDES_TICK_SECONDS),
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Watches RADAR_OVERRIDES (the analysts' category overrides, METHODOLOGY §8b) and the "
                       "date: when a CSV is added, edited or removed, or a day passes (expiry), it finds the "
                       "stored scores whose category disagrees with the overrides in force today and requests "
                       "runs that rescore exactly those sites, on every edition they have, and publish.")
def overrides_sensor(context: dg.SensorEvaluationContext, warehouse: DuckDBWarehouse):
    state = overrides_state()
    if context.cursor == state:
        return dg.SkipReason("overrides folder unchanged today")
    if _scoring_in_progress(context.instance):
        return dg.SkipReason("a scoring run is in progress; the overrides are compared at the next tick")
    try:
        with warehouse.get_connection(read_only=True, wait_seconds=LOCK_WAIT_SENSOR) as con:
            drift = store.override_drift(con)
            rejects = store.override_rejects(con)
    except duckdb.CatalogException:
        return dg.SensorResult(skip_reason="no site scores in the warehouse yet", cursor=state)
    except duckdb.IOException as exc:
        return dg.SkipReason(f"warehouse busy, trying again at the next tick: {str(exc)[:300]}")
    from radar_pipeline.sites.overrides import reject_lines  # polars: loaded on first use, not with the definitions
    for line in reject_lines(rejects):
        context.log.warning(line)
    if drift.is_empty():
        return dg.SensorResult(skip_reason="every stored category agrees with the overrides in force",
                               cursor=state)
    known = context.instance.get_dynamic_partitions(sites_partitions.name)
    requests = []
    digest = hashlib.sha256(state.encode()).hexdigest()[:12]
    for (edition,), group in drift.group_by("edition", maintain_order=True):
        ids = set(group["site_id"].to_list())
        context.log.info(f"edition {edition}: {len(ids)} site(s) whose category disagrees with today's overrides")
        requests += range_requests(known, ids, edition=int(edition), only_stale=True,
                                   run_key_prefix=f"overrides-{digest}-{edition}",
                                   last_job=score_and_publish_job.name)
    return dg.SensorResult(run_requests=requests, cursor=state)


def _stat_key(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "gone"
    return f"{st.st_size}:{st.st_mtime_ns}"


_UNFINISHED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED]


def _scoring_in_progress(instance: dg.DagsterInstance) -> bool:
    return any(instance.get_run_ids(filters=dg.RunsFilter(job_name=job, statuses=_UNFINISHED), limit=1)
               for job in SCORING_JOBS)


site_register = dg.AssetSpec(
    "site_register", group_name="sites", kinds={"duckdb"},
    description="Latest accepted state of every site (tables sites, site_saq, site_controls, "
                "site_nonconformities; history in site_history, rejects in site_rejects). Written by "
                "site_inbox_sensor or `radar sites ingest`.",
    metadata={"dagster/table_name": "sites"})
