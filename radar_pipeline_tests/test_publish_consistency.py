"""A published snapshot never mixes an edition's country/inherent risk with site scores computed on
an older one (issue 23 item 3): after a refresh, publish waits for the rescoring (its automation
condition, and a check in the asset itself); the Parquet files are replaced whole and carry the
data dictionary's column descriptions as Arrow field metadata."""
from __future__ import annotations

import shutil
import threading

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from radar_pipeline.cli.runs import baseline, follow_data, publish_metadata, publish_warehouse, refresh_edition
from radar_pipeline.cli.runs import score_sites as run_scoring
from radar_pipeline.platform import settings
from radar_pipeline.platform.warehouse import DuckDBWarehouse, connect
from radar_pipeline.publish import build
from radar_pipeline.publish.assets import sites_behind
from radar_pipeline.sites import generate, store

pytestmark = pytest.mark.slow  # Dagster runs (a refresh, scoring and publish runs)

N_SITES = 25


def one(path, sql):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory, sample_edition_2024):
    """Edition 2024 (the session's sample copy), 25 sites scored on it, published once."""
    tmp = tmp_path_factory.mktemp("consistency")
    mp = pytest.MonkeyPatch()
    mp.setenv("RADAR_SOURCES_MIRROR", str(settings.SAMPLE_MIRROR_DIR))
    mp.setenv("RADAR_USER_FILES", str(tmp / "user"))
    mp.setenv("RADAR_OVERRIDES", str(tmp / "no-overrides"))
    published = tmp / "published" / "radar.duckdb"
    mp.setenv("RADAR_PUBLISHED", str(published))
    mp.setenv("RADAR_BUYERS_INBOX", str(tmp / "buyers"))
    mp.setenv("RADAR_PICTURES", str(tmp / "pictures"))
    wh = shutil.copy(sample_edition_2024, tmp / "radar.duckdb")
    mp.setenv("RADAR_WAREHOUSE", str(wh))
    instance = dg.DagsterInstance.ephemeral()
    with connect(wh) as con:
        countries = [r[0] for r in con.sql("select iso3 from countries").fetchall()]
        classes = [r[0] for r in con.sql("select code from isic where level = 'class'").fetchall()]
    generate.write_sites(generate.generate_sites(N_SITES, 5, countries, classes), tmp / "sites.jsonl")
    with connect(wh) as con:
        keys = store.ingest(con, tmp / "sites.jsonl").to_score
    assert run_scoring(keys, warehouse=wh, instance=instance).success
    assert publish_warehouse(warehouse=wh, instance=instance).success
    yield {"tmp": tmp, "wh": wh, "instance": instance, "published": published, "keys": keys}
    mp.undo()


def publish_times(instance) -> list[float]:
    return sorted(r.timestamp for r in instance.fetch_materializations(dg.AssetKey("publish"), limit=1000).records)


def last_scoring_time(instance) -> float:
    records = instance.fetch_materializations(dg.AssetKey("site_scores"), limit=1, ascending=False).records
    return records[0].timestamp


def test_after_a_refresh_publish_waits_for_the_rescoring(world):
    """What the daemon's automation sensor and `follow_data` do after a refresh of a new edition:
    site_scores is requested on the tick that sees the refresh, publish is not (it would run
    beside or before the rescoring); publish is requested once the scores are in, and the file
    then shows the new edition for every site. A publish launched meanwhile by another path
    (the buyers sensor, `radar publish`) leaves the old snapshot in place."""
    from radar_pipeline.definitions import defs

    instance, wh, published = world["instance"], world["wh"], world["published"]
    before = one(published, "select any_value(snapshot_id) from publish_info")[0][0]
    cursor = baseline(instance)
    assert refresh_edition(2025, warehouse=wh, instance=instance).success
    refreshed_at = max(r.timestamp for r in instance.fetch_materializations(
        dg.AssetKey("inherent_risk_overall"), limit=5, ascending=False).records)

    tick = dg.evaluate_automation_conditions(defs, instance, cursor=cursor)
    assert tick.get_num_requested(dg.AssetKey("site_scores")) == N_SITES
    assert tick.get_num_requested(dg.AssetKey("publish")) == 0  # not beside the rescoring

    # meanwhile, any other publish launch: held back, saying why, the old snapshot untouched
    with connect(wh, read_only=True) as con:
        edition, _at, n_behind, _first = sites_behind(con)
    assert (edition, n_behind) == (2025, N_SITES)
    early = publish_warehouse(warehouse=wh, instance=instance)
    assert early.success and publish_metadata(early) == {}
    said = [e.user_message for e in instance.all_logs(early.result.run_id) if "not published" in e.user_message]
    assert said and f"{N_SITES} site(s)" in said[0] and "edition 2025" in said[0]
    assert one(published, "select any_value(snapshot_id) from publish_info")[0][0] == before
    assert one(published, "select distinct edition from site_scores_latest") == [(2024,)]

    cursor = follow_data(instance, cursor, warehouse=wh, log=lambda *_: None)
    scored = last_scoring_time(instance)
    assert scored > refreshed_at
    # no publish between the refresh and the end of the rescoring; one after it
    assert not [t for t in publish_times(instance) if refreshed_at < t < scored]
    assert len([t for t in publish_times(instance) if t > scored]) == 1
    assert one(published, "select distinct edition from site_scores_latest") == [(2025,)]
    assert one(published, "select count(*) from site_scores_latest") == [(N_SITES,)]
    assert one(published, "select max(edition) from inherent_risk_overall") == [(2025,)]
    with connect(wh, read_only=True) as con:
        assert sites_behind(con)[2] == 0
    assert not dg.evaluate_automation_conditions(defs, instance, cursor=cursor).get_num_requested(
        dg.AssetKey("publish"))  # settled: published once


def test_a_publish_can_be_forced_while_sites_are_behind(world):
    """The launchpad's `allow_stale_sites` publishes anyway (an operator's choice, logged)."""
    from radar_pipeline.definitions import defs

    instance, wh = world["instance"], world["wh"]
    with connect(wh) as con:  # as if the latest edition's inherent stage were recomputed just now
        con.execute("update edition_stages set computed_at = now()::timestamp + interval 1 hour "
                    "where stage = 'inherent' and edition = (select max(edition) from edition_stages)")
        assert sites_behind(con)[2] == N_SITES
    held = publish_warehouse(warehouse=wh, instance=instance)
    assert held.success and publish_metadata(held) == {}
    forced = defs.resolve_job_def("publish_warehouse").execute_in_process(
        instance=instance, raise_on_error=False, resources={"warehouse": DuckDBWarehouse(database=str(wh))},
        run_config={"ops": {"publish": {"config": {"allow_stale_sites": True}}}})
    assert forced.success
    assert forced.get_asset_materialization_events()[-1].asset_key == dg.AssetKey("publish")
    assert [e for e in instance.all_logs(forced.run_id) if "allow_stale_sites" in e.user_message]


def test_parquet_files_carry_column_descriptions_as_arrow_field_metadata(world):
    published = world["published"]
    folder = published.parent / "parquet"
    dictionary = {(t, c): d for t, c, d in one(
        published, "select table_name, column_name, description from data_dictionary")}
    for table in ("site_scores_latest", "country_risk", "inherent_risk_overall"):
        schema = pq.read_schema(folder / f"{table}.parquet")
        for f in schema:
            assert f.metadata and f.metadata[b"description"].decode() == dictionary[(table, f.name)], (table, f.name)
        assert schema.metadata[b"description"]  # the table's own description, file-level
    # the types a reader derives are unchanged by the stored Arrow schema (DuckDB reads it too)
    con = duckdb.connect()
    assert con.sql(f"select count(*) from '{folder / 'site_scores_latest.parquet'}'").fetchall() == \
        one(published, "select count(*) from site_scores_latest")
    assert pq.read_table(folder / "site_scores_latest.parquet").num_rows == N_SITES


def test_a_reader_during_republishes_never_sees_a_half_parquet_file(world):
    """Readers open every Parquet file through `parquet/` in a loop while the snapshot is published
    again and again: every read is a whole file (no error, the right row count)."""
    wh, published = world["wh"], world["published"]
    folder = published.parent / "parquet"
    expected = {t: one(published, f"select count(*) from {t}")[0][0]
                for t in ("site_scores_latest", "site_score_factors", "country_risk")}
    errors: list[str] = []
    reads = [0]
    stop = threading.Event()

    def read():
        while not stop.is_set():
            for table, n in expected.items():
                try:
                    got = pq.read_table(folder / f"{table}.parquet").num_rows
                    with duckdb.connect() as con:
                        got2 = con.sql(f"select count(*) from '{folder / table}.parquet'").fetchall()[0][0]
                    if (got, got2) != (n, n):
                        errors.append(f"{table}: {got}/{got2} rows, expected {n}")
                    reads[0] += 1
                except Exception as exc:  # noqa: BLE001 — any failed read is the finding
                    errors.append(f"{table}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(4):
            build.publish(wh, published, log=lambda *_: None)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:5]
    assert reads[0] > 10


def test_a_refresh_landing_in_the_same_tick_as_a_scoring_run_still_gets_its_rescoring(tmp_path, monkeypatch,
                                                                                     sample_edition_2024):
    """What failed the daemon consistency test now and then: the inbox sensor's scoring run ends,
    the UI's refresh lands within the same 15 s, and the automation's next tick sees both."""
    from radar_pipeline.definitions import defs

    for key, value in {"RADAR_SOURCES_MIRROR": str(settings.SAMPLE_MIRROR_DIR), "RADAR_USER_FILES": str(tmp_path / "u"),
                       "RADAR_OVERRIDES": str(tmp_path / "o"), "RADAR_PICTURES": str(tmp_path / "p"),
                       "RADAR_PUBLISHED": str(tmp_path / "published" / "radar.duckdb")}.items():
        monkeypatch.setenv(key, value)
    wh = shutil.copy(sample_edition_2024, tmp_path / "radar.duckdb")
    instance = dg.DagsterInstance.ephemeral()
    with connect(wh) as con:
        countries = [r[0] for r in con.sql("select iso3 from countries").fetchall()]
        classes = [r[0] for r in con.sql("select code from isic where level = 'class'").fetchall()]
    generate.write_sites(generate.generate_sites(10, 5, countries, classes), tmp_path / "sites.jsonl")
    with connect(wh) as con:
        keys = store.ingest(con, tmp_path / "sites.jsonl").to_score
    assert run_scoring(keys, warehouse=wh, instance=instance).success
    cursor = baseline(instance)
    assert run_scoring(keys, warehouse=wh, instance=instance).success  # e.g. the inbox sensor's run
    assert refresh_edition(2025, warehouse=wh, instance=instance).success  # then the refresh, same tick
    tick = dg.evaluate_automation_conditions(defs, instance, cursor=cursor)
    assert tick.get_num_requested(dg.AssetKey("site_scores")) == len(keys)
    assert tick.get_num_requested(dg.AssetKey("publish")) == 0  # not beside the rescoring

    # what the daemon's next ticks do (here in-process): rescore, then publish once, on 2025
    follow_data(instance, cursor, warehouse=wh, log=lambda *_: None)
    published = tmp_path / "published" / "radar.duckdb"
    assert one(published, "select distinct edition from site_scores_latest") == [(2025,)]
    assert one(published, "select count(*) from site_scores_latest") == [(len(keys),)]
