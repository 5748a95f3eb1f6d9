"""Through a real dagster-daemon: sites left behind the latest edition are rescored on it and
published by the methodology sensor, whatever kept the automation from doing it.

The case built here is the one the automation cannot see: edition 2025 refreshed while no daemon
ran (its first tick counts what is already there as handled, so nothing requests the rescoring),
with every site scored on 2024 before. Without the catch-up the published file would stay absent
(or on 2024) until the next change. RADAR_BEHIND_GRACE_SECONDS=0: the sensor's first tick acts.
Every process started here is stopped by process group in the finally block.
"""
from __future__ import annotations

import time

import dagster as dg
import duckdb
import pytest
from screenshots import DagsterUI, group_members, prepare_demo  # scripts/ (pytest pythonpath)

pytestmark = pytest.mark.slow  # a real dagster-daemon and webserver

N_SITES = 12


def published_state(path) -> tuple | None:
    """(latest inherent edition, editions of the sites' latest scores, sites) of the published
    file, or None while there is none."""
    if not path.exists():
        return None
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:  # mid-swap
        return None
    try:
        return (con.sql("select max(edition) from inherent_risk_overall").fetchall()[0][0],
                [r[0] for r in con.sql("select distinct edition from site_scores_latest order by 1").fetchall()],
                con.sql("select count(*) from site_scores_latest").fetchall()[0][0])
    finally:
        con.close()


def test_sites_left_behind_while_no_daemon_ran_are_rescored_and_published(tmp_path, monkeypatch):
    from radar_pipeline.cli.runs import refresh_edition, score_sites

    demo = prepare_demo(tmp_path / "catch_up", n_sites=N_SITES)
    for key, value in demo.env().items():
        monkeypatch.setenv(key, value)
    with dg.DagsterInstance.from_config(str(demo.home)) as instance:
        assert score_sites(demo.site_ids, edition=2024, warehouse=demo.warehouse, instance=instance).success
        # no daemon: nothing follows the refresh (the CLI's `radar refresh` would rescore in process)
        assert refresh_edition(2025, warehouse=demo.warehouse, instance=instance).success
    published = demo.root / "published" / "radar.duckdb"
    assert published_state(published) is None
    monkeypatch.setenv("RADAR_BEHIND_GRACE_SECONDS", "0")
    ui = DagsterUI(demo)
    try:
        ui.__enter__()
        deadline, state = time.monotonic() + 240, None
        while time.monotonic() < deadline and state != (2025, [2025], N_SITES):
            time.sleep(2)
            state = published_state(published)
        assert state == (2025, [2025], N_SITES), f"published: {state}" + ui.diagnosis()
        log = (demo.root / "daemon.log").read_text(encoding="utf-8", errors="replace")
        assert "no rescoring under way: rescoring them on edition 2025" in log
    finally:
        ui.stop()
        for pid in ui.pids():
            assert group_members(pid) == [], f"process group {pid} still has live processes"
