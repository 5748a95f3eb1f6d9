"""Overrides are data (issue 21 item 1): an override written to the overrides CSV by hand, changed,
removed or expired reaches the stored scores of exactly the sites it concerns, on every edition
they have, through the daemon's sensor and through the CLI paths that score."""
from __future__ import annotations

import json
import shutil
from datetime import date, timedelta

import dagster as dg
import polars as pl
import pytest

from radar_pipeline.platform.partitions import sites as sites_partitions
from radar_pipeline.platform.warehouse import DuckDBWarehouse, connect
from radar_pipeline.sites import generate, store
from radar_pipeline.sites.assets import RANGE_END, RANGE_START, overrides_sensor, overrides_state, site_scores

HEADER = "site_id,category,reason,author,created_on,expires_on\n"


@pytest.fixture
def world(sample_edition_2024, tmp_path, monkeypatch):
    """40 sample sites scored for editions 2024 and 2023 (2023: the same inherent risk copied,
    enough for scoring), no override yet."""
    wh = tmp_path / "radar.duckdb"
    shutil.copyfile(sample_edition_2024, wh)
    folder = tmp_path / "overrides"
    folder.mkdir()
    monkeypatch.setenv("RADAR_OVERRIDES", str(folder))
    con = connect(wh)
    try:
        con.execute("insert into inherent_risk_overall select * replace (2023 as edition) "
                    "from inherent_risk_overall where edition = 2024")
        countries = [r[0] for r in con.sql("select distinct iso3 from inherent_risk_overall").fetchall()]
        classes = [r[0] for r in con.sql("select code from isic where level = 'class'").fetchall()]
        generate.write_sites(generate.generate_sites(40, 5, sorted(countries), classes), tmp_path / "s.jsonl")
        keys = store.ingest(con, tmp_path / "s.jsonl").to_score
        for edition in (2023, 2024):
            store.score_and_store(con, edition, keys)
    finally:
        con.close()
    return wh, folder, sorted(keys)


def snapshot(wh) -> pl.DataFrame:
    con = connect(wh, read_only=True)
    try:
        return con.sql("select edition, site_id, category, category_calculated, override_reason, scored_at, "
                       "final_score from site_scores order by edition, site_id").pl()
    finally:
        con.close()


def other_category(wh, site: str) -> str:
    calc = snapshot(wh).filter(pl.col("site_id") == site)["category_calculated"][0]
    return "Low" if calc != "Low" else "High"


def write(folder, rows: list[str]) -> None:
    (folder / "team.csv").write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")


@pytest.mark.slow
def test_hand_edited_csv_reaches_only_that_site_on_every_edition(world):
    wh, folder, keys = world
    site = keys[3]
    before = snapshot(wh)
    new = other_category(wh, site)
    write(folder, [f"{site},{new},agreed at the supplier review,ana,{date.today()},"])
    con = connect(wh)
    try:
        drift = store.override_drift(con)
        assert drift.rows() == [(2023, site), (2024, site)]
        done = store.apply_overrides(con)
        assert done == {2023: [site], 2024: [site]}
        assert store.override_drift(con).is_empty()      # nothing left to apply: no loop
    finally:
        con.close()
    after = snapshot(wh)
    changed = after.join(before, on=["edition", "site_id"], suffix="_before").filter(
        pl.col("scored_at") != pl.col("scored_at_before"))
    assert sorted(changed["site_id"].unique()) == [site]                     # no other site was touched
    row = after.filter(pl.col("site_id") == site)
    assert set(row["category"]) == {new} and set(row["override_reason"]) == {"agreed at the supplier review"}
    assert row["final_score"].to_list() == before.filter(pl.col("site_id") == site)["final_score"].to_list()

    # removing the row from the CSV gives the calculated category back, again only for that site
    write(folder, [])
    con = connect(wh)
    try:
        assert store.apply_overrides(con) == {2023: [site], 2024: [site]}
    finally:
        con.close()
    row = snapshot(wh).filter(pl.col("site_id") == site)
    assert (row["category"] == row["category_calculated"]).all() and row["override_reason"].null_count() == 2


@pytest.mark.slow
def test_expired_override_is_undone_the_day_after(world):
    """Stored with an override in force; its expires_on is now past: with no file change, the
    comparison with today's overrides finds it and rescoring restores the calculated category."""
    wh, folder, keys = world
    site = keys[5]
    new = other_category(wh, site)
    con = connect(wh)
    try:
        in_force = pl.DataFrame({"site_id": [site], "category": [new], "reason": ["until the audit"],
                                 "author": ["bo"]})
        for edition in (2023, 2024):   # scored while the override was in force (yesterday)
            store.score_and_store(con, edition, [site], overrides=in_force)
        yesterday = date.today() - timedelta(days=1)
        write(folder, [f"{site},{new},until the audit,bo,{yesterday - timedelta(days=5)},{yesterday}"])
        assert store.override_drift(con)["site_id"].to_list() == [site, site]
        store.apply_overrides(con)
    finally:
        con.close()
    row = snapshot(wh).filter(pl.col("site_id") == site)
    assert (row["category"] == row["category_calculated"]).all()


def _sensor(wh, instance, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor,
                                 resources={"warehouse": DuckDBWarehouse(database=str(wh))}) as context:
        return overrides_sensor(context)


@pytest.mark.slow
def test_sensor_requests_runs_for_exactly_the_drifting_site_and_the_run_applies_it(world):
    wh, folder, keys = world
    site = keys[7]
    new = other_category(wh, site)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(sites_partitions.name, keys)
        first = _sensor(wh, instance)
        assert not first.run_requests                       # nothing disagrees yet
        assert first.cursor == overrides_state()
        # unchanged folder, same day: a cheap skip, no warehouse connection
        assert isinstance(_sensor(wh, instance, first.cursor), dg.SkipReason)
        write(folder, [f"{site},{new},seen on site,ana,{date.today()},"])
        result = _sensor(wh, instance, first.cursor)
        reqs = result.run_requests
        assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in reqs] == [(site, site), (site, site)]
        editions = sorted(r.run_config["ops"]["site_scores"]["config"]["edition"] for r in reqs)
        assert editions == [2023, 2024]
        assert all(r.run_config["ops"]["site_scores"]["config"]["only_stale"] for r in reqs)
        # the day changing alone makes the sensor look again (expiry)
        stale_day = json.loads(result.cursor)
        stale_day["day"] = (date.today() - timedelta(days=1)).isoformat()
        again = _sensor(wh, instance, json.dumps(stale_day))
        assert len(again.run_requests) == 2
        # what the run does: only the drifting site of its range is rescored
        before = snapshot(wh)
        for edition in (2023, 2024):
            out = dg.materialize([site_scores], partition_key=site, instance=instance,
                                 resources={"warehouse": DuckDBWarehouse(database=str(wh))},
                                 run_config={"ops": {"site_scores": {"config": {"edition": edition,
                                                                                 "only_stale": True}}}})
            assert out.success
    after = snapshot(wh)
    assert set(after.filter(pl.col("site_id") == site)["category"]) == {new}
    untouched = after.filter(pl.col("site_id") != site)
    assert untouched.equals(before.filter(pl.col("site_id") != site))


@pytest.mark.slow
def test_cli_ingest_of_an_unchanged_file_applies_a_hand_edit_and_publishes(world, tmp_path, monkeypatch):
    """`radar sites ingest` with nothing new to score still applies the overrides folder."""
    from radar_pipeline.cli import main

    wh, folder, keys = world
    site = keys[9]
    new = other_category(wh, site)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    published = tmp_path / "published" / "radar.duckdb"
    monkeypatch.setenv("RADAR_PUBLISHED", str(published))
    write(folder, [f"{site},{new},buyer's own audit,cy,{date.today()},"])
    before = snapshot(wh)
    assert main(["sites", "ingest", str(tmp_path / "s.jsonl"), "--warehouse", str(wh)]) == 0
    after = snapshot(wh)
    assert set(after.filter(pl.col("site_id") == site)["category"]) == {new}
    assert after.filter(pl.col("site_id") != site).equals(before.filter(pl.col("site_id") != site))
    con = connect(published, read_only=True)
    try:
        got = con.sql("select edition, category, override_reason from site_scores_history where site_id = $s "
                      "order by edition", params={"s": site}).fetchall()
    finally:
        con.close()
    assert got == [(2023, new, "buyer's own audit"), (2024, new, "buyer's own audit")]
    # nothing disagrees any more: a second ingest leaves the snapshot alone
    assert main(["sites", "ingest", str(tmp_path / "s.jsonl"), "--warehouse", str(wh)]) == 0
    assert snapshot(wh).equals(after)


# --- hostile override rows (issue 22 item 2, overrides) ------------------------------------------

def test_override_dates_are_strict_and_never_in_the_future(tmp_path):
    from radar_pipeline.sites.overrides import read_overrides

    folder = tmp_path / "o"
    folder.mkdir()
    tomorrow = date.today() + timedelta(days=1)
    write(folder, ["A,High,basic iso date,ana,20260101,",           # Python's fromisoformat accepts it
                   "B,High,week date,ana,2026-W01-1,",
                   "C,High,far future,ana,9999-12-31,",               # would win over every later override
                   f"D,High,tomorrow,ana,{tomorrow},",
                   "E,High,fine,ana,2026-01-01,2026-13-01",
                   "F,High,fine,ana,2026-01-01,"])
    read = read_overrides(folder)
    assert read.valid["site_id"].to_list() == ["F"]
    why = {(r["site_id"], r["field"]): r["reason"] for r in read.rejects.iter_rows(named=True)}
    assert why[("A", "created_on")] == "created_on '20260101' is not a date (YYYY-MM-DD)"
    assert ("B", "created_on") in why and ("E", "expires_on") in why
    assert why[("C", "created_on")] == "created_on 9999-12-31 is in the future"
    assert why[("D", "created_on")] == f"created_on {tomorrow} is in the future"
    assert {r["line"] for r in read.rejects.iter_rows(named=True)} == {2, 3, 4, 5, 6}


def test_override_text_is_cleaned_for_bi_tools_and_spreadsheets(tmp_path):
    from radar_pipeline.sites.overrides import read_overrides

    folder = tmp_path / "o"
    folder.mkdir()
    write(folder, ['A,High,"=cmd|\' /C calc\'!A0",ana,2026-01-01,',
                   "B,High,line\x07bell\x1b[31m and \u202eoverride,@bo,2026-01-01,",
                   "C,High,\x01\x02,ana,2026-01-01,"])                 # nothing left: no reason
    read = read_overrides(folder)
    got = {r["site_id"]: (r["reason"], r["author"]) for r in read.valid.iter_rows(named=True)}
    assert got["A"] == ("'=cmd|' /C calc'!A0", "ana")
    assert got["B"] == ("linebell[31m and override", "'@bo")
    assert read.rejects.row(0, named=True)["reason"] == "an override needs a reason"
