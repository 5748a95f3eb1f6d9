"""What runs by itself: downstream work follows data (automation conditions), the annual
refresh follows the calendar, a re-run follows a new source vintage.

Why conditions on assets rather than run-status sensors on jobs: a sensor watching the
`refresh_edition` job misses every other way an edition gets materialised — the asset graph's
"Materialize", a backfill, a CLI run with the daemon up. An automation condition looks at the
assets' events, whatever launched them:

* `site_scores` (every registered site) is requested when any edition's inherent risk changes;
  its config default (edition 0) scores the latest edition, so all sites end on one edition.
* `publish` is requested when country risk, inherent risk, site scores or buyer lists change,
  once nothing upstream is still running or requested on the same tick: after a refresh it waits
  for the rescoring and publishes once, with current scores (never a snapshot mixing the new
  edition's risk with sites scored on the old one; the publish asset also checks it).
* the pictures are redrawn when their inputs change.

The automation sensor (`radar_automation`, running by default) submits each tick's requests as
one backfill, so the site_scores request honours its single-run backfill policy (one run for all
sites, not one per site). Without a daemon, `radar_pipeline.cli.runs.follow_data` evaluates the
same conditions in-process and runs what they request (the CLI does this after a refresh).
"""
from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb

from radar_pipeline.platform import run_settings, settings
from radar_pipeline.platform.warehouse import DuckDBWarehouse

AUTOMATION_SENSOR = "radar_automation"


def after_upstream_change() -> dg.AutomationCondition:
    """Upstream data changed since this asset (partition) was last requested or updated, and
    nothing upstream or here is running. Unlike eager(), it does not wait for upstream
    partitions that were never materialised (editions nobody refreshed) nor fire for partitions
    that are merely missing (new sites are scored by the intake sensor/CLI in one run)."""
    return (dg.AutomationCondition.any_deps_updated().since_last_handled()
            & ~dg.AutomationCondition.any_deps_in_progress()
            & ~dg.AutomationCondition.in_progress()).with_label("after an upstream change")


# the refresh's outputs that site_scores reads: when one of them changes, sites are rescored first
EDITION_INPUTS = ("country_topic_risk", "inherent_risk_overall")


def edition_input_updated() -> dg.AutomationCondition:
    return (dg.AutomationCondition.any_deps_match(dg.AutomationCondition.newly_updated())
            .allow(dg.AssetSelection.assets(*EDITION_INPUTS)).with_label("an edition input updated on this tick"))


def rescoring_due() -> dg.AutomationCondition:
    """site_scores' inputs changed since it was last handled (see after_new_edition)."""
    handled = (dg.AutomationCondition.newly_requested()
               | (dg.AutomationCondition.newly_updated() & ~edition_input_updated())
               | dg.AutomationCondition.initial_evaluation()).with_label("handled (not by a run beside a refresh)")
    return dg.AutomationCondition.any_deps_updated().since(handled).with_label("rescoring due")


def after_new_edition() -> dg.AutomationCondition:
    """site_scores' condition: after_upstream_change(), except that a scoring run landing on the
    tick that also sees a refresh's output does not count as having handled that refresh.

    Why: since_last_handled() resets when the target is newly updated, and a reset wins over a
    trigger seen on the same tick. A site scoring run (the inbox sensor's, a CLI run) that ends
    within the same 15 s as a refresh would then swallow the refresh: no rescoring is requested,
    the sites stay on the old edition, and publish holds the snapshot back until the methodology
    sensor's catch-up (RADAR_BEHIND_GRACE_SECONDS later). Here an update only counts as handled
    when no edition input was updated on the same tick. Requests and the first evaluation still
    do; an update with no refresh beside it too (or every intake would be scored twice)."""
    return (rescoring_due()
            & ~dg.AutomationCondition.any_deps_in_progress()
            & ~dg.AutomationCondition.in_progress()).with_label("after an upstream change, refreshes never missed")


def after_rescoring() -> dg.AutomationCondition:
    """publish's condition: after_upstream_change(), but not on the tick that first sees a
    refresh's output. That tick requests the rescoring (site_scores); publishing beside it — a
    run of its own, site_scores being partitioned by site and publish not — could land before
    the scores (a snapshot mixing the new country/inherent risk with sites scored on the old
    one: ~2 minutes under the daemon, issue 23). Held back, publish stays due ("since last
    handled") while any site's rescoring is due (its inputs changed since it was last requested
    or updated: the refresh run may still be finishing on the tick its inherent risk lands, and
    site_scores is requested on a later one); then the rescoring is in progress (a run or the
    sensor's backfill), and publish fires once site_scores is updated: one snapshot, with
    current scores. With no site to rescore it fires on the next tick. The publish asset checks
    the same in the warehouse (publish/assets.py, `sites_behind`)."""
    return (after_upstream_change()
            & ~edition_input_updated()
            # site_scores' inputs changed and it was not requested yet (the refresh run may still
            # be finishing on the tick its inherent risk lands): the tick that requests it is not
            # publish's either
            & ~dg.AutomationCondition.any_deps_match(rescoring_due())
            .allow(dg.AssetSelection.assets("site_scores")).with_label("no rescoring due")
            ).with_label("after an upstream change and the rescoring")


# asset key -> its condition (applied in definitions.py through map_asset_specs)
FOLLOWS_DATA = ("site_scores", "publish", "risk_map", "site_category_distribution", "site_explanations",
                "benchmark_agreement_picture")
CONDITIONS = {"publish": after_rescoring, "site_scores": after_new_edition}


def with_automation(spec: dg.AssetSpec) -> dg.AssetSpec:
    key = spec.key.to_user_string()
    if key in FOLLOWS_DATA and spec.automation_condition is None:
        return spec.replace_attributes(automation_condition=CONDITIONS.get(key, after_upstream_change)())
    return spec


automation_sensor = dg.AutomationConditionSensorDefinition(
    AUTOMATION_SENSOR, target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
    # 15 s: evaluating the conditions over a few thousand site partitions takes well under a second
    minimum_interval_seconds=15, emit_backfills=True,
    description="Rescores sites after any change of inherent risk, republishes the BI snapshot after "
                "any change of its inputs, redraws pictures — whatever launched the upstream run.")


# --- the annual schedule -------------------------------------------------------------------------

def _refresh_run_config() -> dict:
    """The settings file's run settings as explicit run config (visible on the run's page)."""
    wh = run_settings.default_warehouse()
    return {"resources": {"warehouse": {"config": {
        "database": wh.database, "source": wh.source, "mirror_path": wh.mirror_path,
        "allow_missing_topics": list(wh.allow_missing_topics), "published_path": wh.published_path,
        "keep_snapshots": wh.keep_snapshots}}}}


def build_annual_schedule(job: dg.UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    month, day, hour = run_settings.annual_refresh_date()

    @dg.schedule(job=job, cron_schedule=f"0 {hour} {day} {month} *", name="annual_refresh",
                 default_status=dg.DefaultScheduleStatus.STOPPED,
                 description=f"Refreshes the current edition (the year of the tick) every year on "
                             f"{month:02d}-{day:02d} {hour:02d}:00 — after the main publishers' spring "
                             "releases — with the run settings of radar.toml / the environment. "
                             "Date: [schedule] annual_refresh in radar.toml.")
    def annual_refresh(context: dg.ScheduleEvaluationContext):
        edition = context.scheduled_execution_time.year
        return dg.RunRequest(run_key=f"annual-{edition}", partition_key=str(edition),
                             run_config=_refresh_run_config(), tags={"radar/trigger": "annual"})

    return annual_refresh


# --- new vintages ---------------------------------------------------------------------------------

def watched_folders() -> list[Path]:
    """The mirror the runs read (if any) and the landing folder (live downloads)."""
    source, mirror = run_settings.default_source()
    folders = [Path(mirror)] if source == "mirror" and mirror else []
    return [*folders, settings.landing_dir()]


def vintages(folders: list[Path]) -> list[str]:
    """Every <source>/<vintage> folder under the watched folders."""
    found = set()
    for root in folders:
        if root.is_dir():
            found.update(f"{root}:{s.name}/{v.name}" for s in root.iterdir() if s.is_dir()
                         for v in s.iterdir() if v.is_dir())
    return sorted(found)


def build_vintage_sensor(job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    @dg.sensor(job=job, name="new_vintage_sensor", minimum_interval_seconds=300,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Re-runs the current edition when a new <source>/<vintage> folder appears "
                           "in the sources mirror (RADAR_SOURCES_MIRROR / radar.toml) or the landing "
                           "folder (RADAR_LANDING). The first evaluation only records what is there.")
    def new_vintage_sensor(context: dg.SensorEvaluationContext):
        now = vintages(watched_folders())
        if context.cursor is None:
            return dg.SensorResult(skip_reason=f"recorded {len(now)} vintage folder(s)", cursor=json.dumps(now))
        new = sorted(set(now) - set(json.loads(context.cursor)))
        if not new:
            return dg.SensorResult(skip_reason="no new vintage folder", cursor=json.dumps(now))
        edition = datetime.now().year
        key = hashlib.sha256("\n".join(new).encode()).hexdigest()[:16]
        context.log.info(f"new vintage folder(s): {', '.join(new)} -> refresh edition {edition}")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"vintage-{key}", partition_key=str(edition),
                                        run_config=_refresh_run_config(),
                                        tags={"radar/trigger": "new_vintage"})],
            cursor=json.dumps(now))

    return new_vintage_sensor


# --- rule edits: rows computed with older rules are recomputed (METHODOLOGY §8c) ----------------

METHODOLOGY_TICK_SECONDS = 120
# How long sites may stay behind the latest edition's inherent risk before the methodology sensor
# rescores them itself. The automation's rescoring is requested within a tick (15 s) of the
# refresh's end and its backfill starts a run within ~30 s: this sensor only catches what that
# left behind (its run failed twice, the daemon was down meanwhile), never races it.
BEHIND_GRACE_SECONDS = 600


def behind_grace_seconds() -> int:
    """BEHIND_GRACE_SECONDS, or RADAR_BEHIND_GRACE_SECONDS (whole seconds, 0 or more) when set."""
    raw = os.environ.get("RADAR_BEHIND_GRACE_SECONDS", "").strip()
    if not raw:
        return BEHIND_GRACE_SECONDS
    if not raw.isdigit():
        raise ValueError(f"RADAR_BEHIND_GRACE_SECONDS {raw!r} is not a whole number of seconds (0 or more)")
    return int(raw)


def build_methodology_sensor(refresh_job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """After a rule edit (the code location reloads with new stage versions) or a refresh that
    changed an edition's inputs: find the stored rows that disagree with the rules in force, by
    version, in every edition and stage (radar_pipeline/rules/staleness.py), and request what
    recomputes them — a refresh of each edition whose country or inherent rows are stale (with
    the topics it lacks today allowed missing), then, once those are current, a rescoring run per
    edition of exactly the stale site scores (and a publish). The run keys carry the versions and
    the editions' stage times, so a failed run is not requested again for the same state.

    Last, sites left behind the latest edition (publish/assets.py `behind_site_ids`: their latest
    score predates its inherent risk) for BEHIND_GRACE_SECONDS (RADAR_BEHIND_GRACE_SECONDS) while
    no run or backfill is under way: the rescoring that follows a refresh did not happen (the
    daemon was down when the refresh landed) or failed (twice, with run retries), and the
    published snapshot would otherwise stay on the older edition until the next change.
    They are rescored on the latest edition and published, once per refresh of it (run key)."""
    from radar_pipeline.platform.partitions import sites as sites_partitions
    from radar_pipeline.publish.assets import behind_site_ids
    from radar_pipeline.rules import staleness
    from radar_pipeline.sites.assets import _UNFINISHED, _scoring_in_progress, range_requests, score_and_publish_job

    @dg.sensor(jobs=[refresh_job, score_and_publish_job], name="methodology_sensor",
               minimum_interval_seconds=METHODOLOGY_TICK_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Recomputes the stored rows that disagree with the rules in force (found by "
                           "methodology version in every edition and stage, `radar methodology --stale`): "
                           "refreshes stale editions, then rescores the stale site scores and publishes.")
    def methodology_sensor(context: dg.SensorEvaluationContext, warehouse: DuckDBWarehouse):
        busy = context.instance.get_run_ids(filters=dg.RunsFilter(job_name=refresh_job.name, statuses=_UNFINISHED),
                                            limit=1)
        if busy or _scoring_in_progress(context.instance):
            return dg.SkipReason("a refresh or scoring run is in progress; stale rows are looked for afterwards")
        try:
            with warehouse.get_connection(read_only=True, wait_seconds=20.0) as con:
                stale = staleness.stale_rows(con)
                allowed = {e: staleness.missing_topics(con, e) for e in staleness.stale_editions(stale)}
                sites = staleness.stale_site_scores(con)
                behind_edition, behind_since, behind = behind_site_ids(con)
                stamp = con.sql("select string_agg(edition || stage || computed_at, ',' order by all) "
                                "from edition_stages").fetchall()[0][0] or ""
        except (duckdb.Error, OSError) as exc:  # not refreshed yet, or busy: the next tick looks again
            return dg.SkipReason(f"warehouse not readable now: {str(exc)[:300]}")
        state = hashlib.sha256((json.dumps(fingerprint_versions()) + stamp).encode()).hexdigest()[:12]
        editions = staleness.stale_editions(stale)
        if editions:
            requests = []
            for edition in editions:
                context.log.info(f"edition {edition}: rows computed with older rules; requesting its refresh")
                config = _refresh_run_config()
                config["resources"]["warehouse"]["config"]["allow_missing_topics"] = allowed[edition]
                requests.append(dg.RunRequest(run_key=f"rules-{state}-{edition}", partition_key=str(edition),
                                              job_name=refresh_job.name, run_config=config,
                                              tags={"radar/trigger": "methodology"}))
            return dg.SensorResult(run_requests=requests)
        if sites.is_empty():
            if behind:
                return _rescore_behind(context, int(behind_edition), behind_since, behind)
            return dg.SkipReason("every stored row is current")
        known = context.instance.get_dynamic_partitions(sites_partitions.name)
        requests = []
        for (edition,), group in sites.group_by("edition", maintain_order=True):
            ids = set(group["site_id"].to_list())
            context.log.info(f"edition {edition}: {len(ids)} site score(s) computed with older rules or inputs")
            requests += range_requests(known, ids, edition=int(edition), only_stale=False,
                                       run_key_prefix=f"rules-{state}-{edition}", last_job=score_and_publish_job.name)
        return dg.SensorResult(run_requests=requests)

    def _rescore_behind(context: dg.SensorEvaluationContext, edition: int, since: datetime,
                        behind: list[str]) -> dg.SensorResult | dg.SkipReason:
        waited = (datetime.now(UTC).replace(tzinfo=None) - since).total_seconds()  # computed_at: naive UTC
        what = f"{len(behind)} site(s) (e.g. {', '.join(behind[:3])}) scored before edition {edition}'s inherent risk"
        grace = behind_grace_seconds()
        if waited < grace:
            return dg.SkipReason(f"{what}, {waited:.0f} s ago: left to the rescoring that follows a refresh "
                                 f"for {grace} s (RADAR_BEHIND_GRACE_SECONDS)")
        if _anything_under_way(context.instance):
            return dg.SkipReason(f"{what}: a run or backfill is under way; looked at again afterwards")
        context.log.warning(f"{what}, {waited / 60:.0f} min ago, and no rescoring under way: rescoring them "
                            f"on edition {edition} and publishing")
        known = context.instance.get_dynamic_partitions(sites_partitions.name)
        return dg.SensorResult(run_requests=range_requests(
            known, set(behind), edition=edition, only_stale=False,
            run_key_prefix=f"behind-{edition}-{since:%Y%m%dT%H%M%S%f}", last_job=score_and_publish_job.name))

    return methodology_sensor


def _anything_under_way(instance: dg.DagsterInstance) -> bool:
    """Any run not finished, or an asset backfill still requesting (the automation sensor's
    rescoring is one before it has started its run)."""
    from dagster._core.execution.backfill import BulkActionStatus  # not exported by dagster

    from radar_pipeline.sites.assets import _UNFINISHED

    statuses = [*_UNFINISHED, dg.DagsterRunStatus.CANCELING]  # a run still cancelling holds its slot too
    return bool(instance.get_run_ids(filters=dg.RunsFilter(statuses=statuses), limit=1)
                or instance.get_backfills(status=BulkActionStatus.REQUESTED, limit=1))


def fingerprint_versions() -> dict[str, str]:
    from radar_pipeline.rules import fingerprint

    return fingerprint.versions()


def build_refresh_outcome_sensors(refresh_job: dg.UnresolvedAssetJobDefinition) -> list[dg.SensorDefinition]:
    """A refresh launched from the UI, the schedule or a sensor lands whole or not at all
    (country_risk/edition_backup.py): on success its copy of the edition's previous rows is
    dropped, on failure or cancellation the edition is put back as it was."""
    from radar_pipeline.country_risk import edition_backup

    def finish(context: dg.RunStatusSensorContext, warehouse: DuckDBWarehouse, success: bool):
        with warehouse.get_connection() as con:
            if success:
                edition_backup.commit(con, context.dagster_run.run_id)
            else:
                edition = edition_backup.rollback(con, context.dagster_run.run_id)
                if edition is not None:
                    context.log.info(f"edition {edition} restored as it was before run {context.dagster_run.run_id}")

    # every job of the code location: a "Materialize" of edition assets from the asset graph is an
    # ad hoc run (__ASSET_JOB), not the refresh job, and keeps a copy as well (finish: a no-op for
    # runs that kept none)
    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS,
                          name="refresh_succeeded", default_status=dg.DefaultSensorStatus.RUNNING,
                          description="Drops the copy a successful refresh kept of its edition's previous rows.")
    def refresh_succeeded(context: dg.RunStatusSensorContext, warehouse: DuckDBWarehouse):
        finish(context, warehouse, True)

    @dg.run_failure_sensor(name="refresh_failed",
                           default_status=dg.DefaultSensorStatus.RUNNING,
                           description="Puts a failed refresh's edition back as it was before the run "
                                       "(a new edition: no rows).")
    def refresh_failed(context: dg.RunFailureSensorContext, warehouse: DuckDBWarehouse):
        finish(context, warehouse, False)

    return [refresh_succeeded, refresh_failed]
