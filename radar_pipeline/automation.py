"""What runs by itself: downstream work follows data (automation conditions), the annual
refresh follows the calendar, a re-run follows a new source vintage.

Why conditions on assets rather than run-status sensors on jobs: a sensor watching the
`refresh_edition` job misses every other way an edition gets materialised — the asset graph's
"Materialize", a backfill, a CLI run with the daemon up. An automation condition looks at the
assets' events, whatever launched them:

* `site_scores` (every registered site) is requested when any edition's inherent risk changes;
  its config default (edition 0) scores the latest edition, so all sites end on one edition.
* `publish` is requested when country risk, inherent risk, site scores or buyer lists change,
  once nothing upstream is still running (a refresh followed by rescoring publishes once more
  after the rescoring, so the snapshot ends current).
* the pictures are redrawn when their inputs change.

The automation sensor (`radar_automation`, running by default) submits each tick's requests as
one backfill, so the site_scores request honours its single-run backfill policy (one run for all
sites, not one per site). Without a daemon, `radar_pipeline.cli.runs.follow_data` evaluates the
same conditions in-process and runs what they request (the CLI does this after a refresh).
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import dagster as dg

from radar_pipeline import run_settings, settings

AUTOMATION_SENSOR = "radar_automation"


def after_upstream_change() -> dg.AutomationCondition:
    """Upstream data changed since this asset (partition) was last requested or updated, and
    nothing upstream or here is running. Unlike eager(), it does not wait for upstream
    partitions that were never materialised (editions nobody refreshed) nor fire for partitions
    that are merely missing (new sites are scored by the intake sensor/CLI in one run)."""
    return (dg.AutomationCondition.any_deps_updated().since_last_handled()
            & ~dg.AutomationCondition.any_deps_in_progress()
            & ~dg.AutomationCondition.in_progress()).with_label("after an upstream change")


# asset key -> its condition (applied in definitions.py through map_asset_specs)
FOLLOWS_DATA = ("site_scores", "publish", "risk_map", "site_category_distribution", "site_explanations")


def with_automation(spec: dg.AssetSpec) -> dg.AssetSpec:
    if spec.key.to_user_string() in FOLLOWS_DATA and spec.automation_condition is None:
        return spec.replace_attributes(automation_condition=after_upstream_change())
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
