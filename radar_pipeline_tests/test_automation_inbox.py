"""Inbox -> published in one hop (issue 12 item 5): the inbox sensor's run scores AND publishes,
the automation sensor does not publish a second time, and a tick with nothing new is cheap (no
warehouse connection) so the sensor can tick every few seconds."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import dagster as dg
import duckdb
import pytest

from radar_pipeline.platform.warehouse import DuckDBWarehouse, connect
from radar_pipeline.sites import assets, generate

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture
def world(sample_edition_2024, tmp_path, monkeypatch):
    wh = tmp_path / "radar.duckdb"
    shutil.copyfile(sample_edition_2024, wh)
    for var, sub in (("RADAR_SITES_INBOX", "inbox"), ("RADAR_BUYERS_INBOX", "buyers"),
                     ("RADAR_PICTURES", "pictures"), ("RADAR_USER_FILES", "user"),
                     ("RADAR_OVERRIDES", "no-overrides")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("RADAR_PUBLISHED", str(tmp_path / "published" / "radar.duckdb"))
    monkeypatch.setenv("RADAR_WAREHOUSE", str(wh))
    (tmp_path / "inbox").mkdir()
    return {"wh": wh, "inbox": tmp_path / "inbox", "published": tmp_path / "published" / "radar.duckdb",
            "instance": dg.DagsterInstance.ephemeral(), "resources": {"warehouse": DuckDBWarehouse(database=str(wh))}}


def drop_sites(world, name: str, n: int, seed: int) -> list[str]:
    with connect(world["wh"], read_only=True) as con:
        countries = [r[0] for r in con.sql("select distinct iso3 from inherent_risk_overall").fetchall()]
        classes = [r[0] for r in con.sql("select code from isic where level = 'class'").fetchall()]
    df = generate.generate_sites(n, seed, sorted(countries), classes)
    generate.write_sites(df, world["inbox"] / name)
    return df["site_id"].to_list()


def tick(world, cursor=None):
    with dg.build_sensor_context(instance=world["instance"], cursor=cursor, resources=world["resources"]) as ctx:
        return assets.site_inbox_sensor(ctx)


def run_requests(world, result) -> list[dg.RunResult]:
    """What the daemon does with a tick's result: register the partitions, run each request."""
    from radar_pipeline.definitions import defs

    for req in result.dynamic_partitions_requests:
        world["instance"].add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    return [defs.resolve_job_def(r.job_name).execute_in_process(
        run_config={**QUIET, **r.run_config}, instance=world["instance"], tags=r.tags,
        resources=world["resources"]) for r in result.run_requests]


def published_ids(path) -> set[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {r[0] for r in con.sql("select site_id from site_scores_latest where final_score is not null")
                .fetchall()}
    finally:
        con.close()


@pytest.mark.slow
def test_the_inbox_run_scores_and_publishes_and_automation_does_not_publish_again(world):
    from radar_pipeline.definitions import defs

    before = dg.evaluate_automation_conditions(defs, world["instance"]).cursor  # the daemon's last tick
    ids = drop_sites(world, "a.jsonl", 12, 41)
    result = tick(world)
    (request,) = result.run_requests
    assert request.job_name == "score_and_publish"
    (run,) = run_requests(world, result)
    assert run.success
    assert [e.asset_key.to_user_string() for e in run.get_asset_materialization_events()
            if e.asset_key.to_user_string() == "publish"] == ["publish"]
    assert published_ids(world["published"]) == set(ids)  # in the BI file after ONE run

    after = dg.evaluate_automation_conditions(defs, world["instance"], cursor=before)
    assert after.get_num_requested(dg.AssetKey("publish")) == 0, "published twice"
    assert after.get_num_requested(dg.AssetKey("site_scores")) == 0


@pytest.mark.slow
def test_failed_scoring_does_not_publish(world, monkeypatch):
    from radar_pipeline.sites import store

    drop_sites(world, "a.jsonl", 3, 42)
    result = tick(world)

    def broken(*_a, **_k):
        raise RuntimeError("scoring broke")

    monkeypatch.setattr(store, "score_and_store", broken)
    from radar_pipeline.definitions import defs

    for req in result.dynamic_partitions_requests:
        world["instance"].add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    (request,) = result.run_requests
    run = defs.resolve_job_def(request.job_name).execute_in_process(
        run_config={**QUIET, **request.run_config}, instance=world["instance"], tags=request.tags,
        resources=world["resources"], raise_on_error=False)
    assert not run.success
    assert not run.get_asset_materialization_events()
    assert not world["published"].exists()


def test_a_tick_with_nothing_new_does_not_open_the_warehouse(world, monkeypatch):
    ids = drop_sites(world, "a.jsonl", 3, 43)
    first = tick(world)
    assert [k for r in first.dynamic_partitions_requests for k in r.partition_keys] == ids
    run_requests(world, first)
    # another process holds the warehouse for writing: a tick that connected would say "busy"
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(60)", str(world["wh"])],
                              stdout=subprocess.PIPE, text=True)
    monkeypatch.setattr(assets, "LOCK_WAIT_SENSOR", 0.5)
    try:
        assert holder.stdout.readline().strip() == "held"
        idle = tick(world, first.cursor)
        assert isinstance(idle, dg.SkipReason) and "warehouse busy" not in (idle.skip_message or "")
        # the unscored-sites check still comes round, every RESUME_CHECK_SECONDS
        monkeypatch.setattr(assets, "RESUME_CHECK_SECONDS", 0)
        due = tick(world, first.cursor)
        assert isinstance(due, dg.SkipReason) and "warehouse busy" in due.skip_message
    finally:
        holder.kill()
        holder.wait()


def test_the_cursor_written_before_the_tick_cadence_is_still_read(world):
    drop_sites(world, "a.jsonl", 2, 44)
    first = tick(world)
    files = json.loads(first.cursor)["files"]
    old_style = json.dumps(files)  # what the sensor stored before: the file map alone
    again = tick(world, old_style)
    # the file is known (not ingested again); the overdue unscored-sites check finds the two
    # sites the first tick stored (their run never ran here) and requests them once more
    assert not again.asset_events
    assert len(again.run_requests) == 1
    assert json.loads(again.cursor)["files"] == files
