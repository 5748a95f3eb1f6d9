"""The Dagster UI path end to end: dagster-webserver + dagster-daemon on 127.0.0.1, a backfill of the
site partitions launched over GraphQL (as the UI's Backfill button does), run by the daemon's backfill
loop as ONE run (BackfillPolicy.single_run), scores found in the warehouse.

Every process started here is stopped by process group in the fixture's finally block.
"""
from __future__ import annotations

import time

import duckdb
import pytest
from screenshots import DagsterUI, group_members, prepare_demo  # scripts/ (pytest pythonpath)

pytestmark = pytest.mark.slow  # a real dagster-daemon and webserver: `python -m pytest -m slow`

N_SITES = 25


def read_warehouse(path, sql: str, timeout: float = 90.0):
    """What a reader of the warehouse does while the daemon works: DuckDB lets one process write
    OR several read, so a read that meets a run's write lock (the inbox sensor resumes the demo's
    stored-but-unscored sites in a run of its own; automation publishes) waits and tries again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            con = duckdb.connect(str(path), read_only=True)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(1)
            continue
        try:
            return con.sql(sql).pl()
        finally:
            con.close()


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    demo = prepare_demo(tmp_path_factory.mktemp("ui_e2e"), n_sites=N_SITES)
    server = DagsterUI(demo)
    try:
        server.__enter__()
        yield server
    finally:
        server.stop()
        for pid in server.pids():  # nothing of either process group may survive
            assert group_members(pid) == [], f"process group {pid} still has live processes"


@pytest.mark.slow
def test_backfill_of_site_partitions_through_the_ui(ui):
    started = time.monotonic()
    demo = ui.demo
    assert len(demo.site_ids) == N_SITES
    # the demo stores its sites without scoring them; the inbox sensor may already have resumed
    # them (its own run) by now: either none or all are scored, never a part
    assert read_warehouse(demo.warehouse, "select count(*) as n from site_scores")["n"][0] in (0, N_SITES)

    backfill_id = ui.launch_backfill(["site_scores"], demo.site_ids)
    status = ui.wait_backfill(backfill_id, timeout=120)
    assert status in {"COMPLETED", "COMPLETED_SUCCESS"}, status

    runs = ui.runs(tags={"dagster/backfill": backfill_id})
    assert len(runs) == 1, runs  # single_run backfill policy: one run for the whole range
    assert runs[0]["status"] == "SUCCESS"
    tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
    assert tags["dagster/asset_partition_range_start"] == demo.site_ids[0]
    assert tags["dagster/asset_partition_range_end"] == demo.site_ids[-1]

    scored = read_warehouse(demo.warehouse, "select site_id, final_score, category from site_scores "
                                            "where edition = 2024")
    assert sorted(scored["site_id"].to_list()) == sorted(demo.site_ids)
    assert scored["final_score"].null_count() == 0
    assert set(scored["category"]) <= {"Low", "Medium", "High"}

    # The publish asset (BI snapshot), when the code location has it, materialized from the UI too.
    keys = ui.graphql("{ assetNodes { assetKey { path } } }")["assetNodes"]
    if {"path": ["publish"]} in [n["assetKey"] for n in keys]:
        run_id = ui.launch_assets(["publish"])
        assert ui.wait_run(run_id, timeout=90) == "SUCCESS"
        published = demo.root / "published" / "radar.duckdb"
        assert published.exists()
        con = duckdb.connect(str(published), read_only=True)
        try:
            tables = {r[0] for r in con.sql("select table_name from information_schema.tables").fetchall()}
            table = "site_scores_latest" if "site_scores_latest" in tables else "site_scores"
            assert table in tables, tables
            published_ids = {r[0] for r in con.sql(f"select site_id from {table}").fetchall()}
            assert published_ids == set(demo.site_ids)
        finally:
            con.close()
    assert time.monotonic() - started < 180


@pytest.mark.slow
def test_daemon_publishes_after_the_backfill_without_any_job_sensor(ui):
    """The backfill above is not a job the old run-status sensors watched: the publish asset's
    automation condition (sensor radar_automation in the daemon) publishes the new scores."""
    published = ui.demo.root / "published" / "radar.duckdb"
    deadline = time.monotonic() + 180
    seen = None
    while time.monotonic() < deadline:
        if published.exists():
            try:
                con = duckdb.connect(str(published), read_only=True)
                try:
                    seen = con.sql("select count(*), count(distinct edition) from site_scores_latest").fetchall()[0]
                finally:
                    con.close()
            except duckdb.Error:  # mid-swap on a slow disk: look again
                seen = None
            if seen == (N_SITES, 1):
                break
        time.sleep(2)
    assert seen == (N_SITES, 1), f"published file not current after 180 s: {seen}"
    publishes = [r for r in ui.runs() if ["publish"] in [a["path"] for a in r["assetSelection"] or []]]
    assert publishes and all(r["jobName"] != "publish_warehouse" for r in publishes)  # not the old job sensor
