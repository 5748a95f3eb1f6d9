"""As-of editions, per-edition country universe, Taiwan/Kosovo (METHODOLOGY §1).

- edition Y reads only vintages released in year Y or before, else the oldest, and says so
  in `edition_sources`;
- the country universe is stored per edition: refreshing one edition never changes another;
- Taiwan and Kosovo are ordinary members of the universe: publishers' rows kept, gaps filled
  from their regions, sites there accepted and scored.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from radar_pipeline.cli.runs import refresh_edition, score_sites
from radar_pipeline.platform import integrity, settings
from radar_pipeline.platform.warehouse import connect
from radar_pipeline.rules.methodology import TOPICS
from radar_pipeline.sources import registry
from radar_pipeline.sources.reference import un_m49
from radar_pipeline.sources.toolkit import LandedFile, SourceError

pytestmark = pytest.mark.slow  # refreshes of several editions per test: `python -m pytest -m slow`


def q(path, sql, **params) -> pl.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql(sql, params=params or None).pl()
    finally:
        con.close()


# --- release years and the choice of vintage -------------------------------------------

def test_vintage_labels_map_to_their_release_year(tmp_path):
    assert registry.release_year("fund_for_peace_fsi", "2023") == 2023
    # where the catalogue states a release month, it decides: TI's "CPI 2023" came out 2024-01
    assert registry.release_year("ti_cpi", "2023") == 2024
    assert registry.release_year("ti_cpi", "2024") == 2025
    assert registry.release_year("worldbank_wdi", "2023-03") == 2023
    assert registry.release_year("eu_cahra", "2026-06") == 2026
    assert registry.release_year("worldbank_wdi", "api-2026-12") == 2026
    assert registry.release_year("worldbank_class", "FY2023") == 2022    # published July 2022
    assert registry.release_year("unsd_isic", "rev4") is None            # a classification: every edition
    f = tmp_path / "cahra.json"
    f.write_text("{}")
    landed = LandedFile("eu_cahra", "current", f, extra={"fetched_at": "2027-02-03T10:00:00+00:00"})
    assert registry.release_year("eu_cahra", "current", [landed]) == 2027
    with pytest.raises(SourceError, match="'latest' is not a release label"):
        registry.release_year("ti_cpi", "latest")
    with pytest.raises(SourceError, match="not a release label"):
        registry.release_year("worldbank_wdi", "2023-13")


def test_list_vintage_newest_released_else_oldest():
    vintages = ["2020", "2022", "2026-06"]
    assert registry.choose_list_vintage("eu_cahra", vintages, 2024) == ("2022", 2022, False)
    assert registry.choose_list_vintage("eu_cahra", vintages, 2026) == ("2026-06", 2026, False)
    assert registry.choose_list_vintage("eu_cahra", vintages, 2019) == ("2020", 2020, True)
    assert registry.choose_list_vintage("eu_cahra", [], 2024) is None


def test_as_of_is_decided_per_indicator():
    # a: in 2021 and 2025 vintages; b: only in vintages released after the edition
    raw = pl.DataFrame({
        "indicator_id": ["a", "a", "b", "b"], "vintage": ["2021-07", "2025-06", "2025-06", "2026-01"],
        "iso3": ["AAA"] * 4, "value": [1.0, 2.0, 3.0, 4.0]})
    by_vintage = {v: [] for v in ("2021-07", "2025-06", "2026-01")}
    kept = registry.as_of(raw, "worldbank_wdi", by_vintage, 2023)
    assert sorted(kept.select("indicator_id", "vintage").rows()) == [("a", "2021-07"), ("b", "2025-06")]
    rows = registry.sources_read(kept, "worldbank_wdi", by_vintage, 2023)
    assert sorted(rows.select("vintage", "released_after_edition", "indicators").rows()) == [
        ("2021-07", False, "a"), ("2025-06", True, "b")]
    kept = registry.as_of(raw, "worldbank_wdi", by_vintage, 2025)
    assert sorted(kept.select("indicator_id", "vintage").rows()) == [("a", "2021-07"), ("a", "2025-06"),
                                                                     ("b", "2025-06")]


# --- the shared mirror (real publisher files) --------------------------------------------

@pytest.fixture(scope="module")
def shared_universe(shared_sources):
    return set(un_m49.parse_universe(shared_sources / "un_m49/2022/UNSD_Methodology.csv")["iso3"])


@pytest.mark.parametrize("edition, vintage", [(2023, "2023-03"), (2025, "2025-06")])
def test_poverty_vintage_follows_the_edition(shared_sources, shared_universe, tmp_path, edition, vintage):
    load = registry.load_source("worldbank_wdi", edition, shared_universe, mirror=shared_sources,
                                landing=tmp_path, user_dir=tmp_path)
    poverty = load.observations.filter(pl.col("indicator_id") == "wb_poverty_umic")
    assert poverty.height > 50
    # the whole indicator comes from that vintage: $6.85/2017 PPP for 2023, $8.30/2021 PPP for 2025
    assert set(poverty["vintage"]) == {vintage}
    row = load.edition_sources.filter(pl.col("indicators").str.contains("wb_poverty_umic"))
    assert row.select("vintage", "released_after_edition").rows() == [(vintage, False)]
    if edition == 2023:
        assert "2025-06" in load.not_yet_released


# --- per-edition universe -----------------------------------------------------------------

def _sample_mirror_with_m49(tmp_path: Path, drop_iso3: str) -> Path:
    """A copy of the (synthetic) sample mirror whose M49 file lacks one country."""
    mirror = tmp_path / "mirror"
    shutil.copytree(settings.SAMPLE_MIRROR_DIR, mirror, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    m49 = mirror / "un_m49/2022/UNSD_Methodology.csv"
    lines = m49.read_text(encoding="utf-8-sig").splitlines()
    m49.write_text("\n".join(line for line in lines if f";{drop_iso3};" not in line), encoding="utf-8-sig")
    return mirror


def test_refreshing_one_edition_never_changes_another(tmp_path, monkeypatch):
    monkeypatch.setenv("RADAR_USER_FILES", str(tmp_path / "user"))
    monkeypatch.setenv("RADAR_LANDING", str(tmp_path / "landing"))
    path = tmp_path / "radar.duckdb"
    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(settings.SAMPLE_MIRROR_DIR))
    assert refresh_edition(2023, warehouse=path).success
    before = {t: q(path, f"select * exclude (methodology_version) from {t} where edition = 2023 order by all")
              if t != "edition_countries" else q(path, f"select * from {t} where edition = 2023 order by all")
              for t in ("edition_countries", "country_topic_risk", "inherent_risk_overall")}
    # edition 2024 is built on a different M49 file (one country fewer)
    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(_sample_mirror_with_m49(tmp_path, "KEN")))
    outcome = refresh_edition(2024, warehouse=path)
    assert outcome.success, outcome.failures
    assert "KEN" not in set(q(path, "select iso3 from edition_countries where edition = 2024")["iso3"])
    for table, rows in before.items():
        sql = (f"select * from {table} where edition = 2023 order by all" if table == "edition_countries"
               else f"select * exclude (methodology_version) from {table} where edition = 2023 order by all")
        assert q(path, sql).equals(rows), table
    con = connect(path, read_only=True)
    try:
        for edition in (2023, 2024):
            assert integrity.country_topic_risk_complete(con, edition)[0]
            assert integrity.inherent_risk_overall_complete(con, edition)[0]
    finally:
        con.close()
    # the dimension keeps every country of any edition (a KEN site still has its 2023 score)
    assert "KEN" in set(q(path, "select iso3 from countries")["iso3"])
    assert q(path, "select count(*) n from edition_sources where edition = 2023 and source = 'un_m49'")["n"][0] == 1


# --- Taiwan and Kosovo --------------------------------------------------------------------

def test_taiwan_and_kosovo_are_in_the_universe_with_their_regions(shared_sources):
    df = un_m49.parse_universe(shared_sources / "un_m49/2022/UNSD_Methodology.csv")
    rows = {r["iso3"]: r for r in df.filter(pl.col("iso3").is_in(["TWN", "XKX"])).iter_rows(named=True)}
    assert (rows["TWN"]["subregion"], rows["TWN"]["region"]) == ("Eastern Asia", "Asia")
    assert (rows["XKX"]["subregion"], rows["XKX"]["region"]) == ("Southern Europe", "Europe")
    assert rows["TWN"]["m49"] is None and df["iso3"].n_unique() == df.height


def test_publishers_rows_for_taiwan_and_kosovo_are_kept(shared_sources, shared_universe, tmp_path):
    cpi = registry.load_source("ti_cpi", 2023, shared_universe, mirror=shared_sources,
                               landing=tmp_path, user_dir=tmp_path)
    kept = set(cpi.observations.filter(pl.col("data_year") == 2023)["iso3"])
    assert {"TWN", "XKX"} <= kept          # CPI codes Kosovo KSV: mapped to XKX
    assert not cpi.notes.filter(pl.col("code").is_in(["TWN", "KSV"])).height
    ituc = registry.load_source("ituc", 2025, shared_universe, mirror=shared_sources,
                                landing=tmp_path, user_dir=tmp_path)
    assert "TWN" in set(ituc.observations["iso3"])


SITE = {"site_name": "x", "isic": "1392",
        "saq": {"workers_total": 120, "worker_representation": "none"}, "controls": [], "audits": []}


def test_sites_in_taiwan_and_kosovo_are_accepted_and_scored(tmp_path, monkeypatch):
    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(settings.SAMPLE_MIRROR_DIR))
    monkeypatch.setenv("RADAR_USER_FILES", str(tmp_path / "user"))
    path = tmp_path / "radar.duckdb"
    assert refresh_edition(2024, warehouse=path).success
    rows = q(path, "select iso3, count(distinct topic) n, min(confidence) c from country_topic_risk "
                   "where edition = 2024 and iso3 in ('TWN', 'XKX') group by 1 order by 1")
    assert rows["n"].to_list() == [len(TOPICS)] * 2
    sites = tmp_path / "sites.jsonl"
    sites.write_text("\n".join(json.dumps({"site_id": sid, "country": country, **SITE})
                               for sid, country in (("TW-1", "Taiwan"), ("XK-1", "XKX"))) + "\n")
    from radar_pipeline.sites import store

    con = connect(path)
    try:
        summary = store.ingest(con, sites)
        rejects = con.sql("select * from site_rejects").pl()
    finally:
        con.close()
    assert rejects.is_empty(), rejects.to_dicts()
    outcome = score_sites(summary.to_score, edition=2024, warehouse=path)
    assert outcome.success, outcome.failures
    scores = q(path, "select site_id, iso3, inherent, final_score from site_scores order by site_id")
    assert scores.select("site_id", "iso3").rows() == [("TW-1", "TWN"), ("XK-1", "XKX")]
    assert scores["inherent"].null_count() == 0 and scores["final_score"].null_count() == 0


# --- a whole region without data: income peers, else the world mean, flagged; a topic without data
# names what lacks -----------------------------------------------------------------------------------

def _mirror_without_ilostat(tmp_path: Path, user_rows: list[str] | None) -> Path:
    """A copy of the sample mirror whose working hours come only from `user_rows` (weekly hours):
    no ILOSTAT file and no OWID annual-hours file."""
    mirror = tmp_path / "mirror"
    shutil.copytree(settings.SAMPLE_MIRROR_DIR, mirror, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    shutil.rmtree(mirror / "ilostat")
    shutil.rmtree(mirror / "user")
    shutil.rmtree(mirror / "owid" / "2026-05")
    if user_rows is not None:
        (mirror / "user/2024").mkdir(parents=True)
        (mirror / "user/2024/hours.csv").write_text("iso3,indicator_id,year,value\n" + "\n".join(user_rows) + "\n")
    return mirror


def test_user_file_without_oceania_is_filled_from_income_peers_else_the_world_mean(tmp_path, monkeypatch):
    m49 = un_m49.parse_universe(settings.SAMPLE_MIRROR_DIR / "un_m49/2022/UNSD_Methodology.csv")
    oceania = sorted(m49.filter(pl.col("region") == "Oceania")["iso3"])
    others = sorted(m49.filter(pl.col("region") != "Oceania")["iso3"])
    rows = [f"{iso3},ilo_weekly_hours,2023,{38 + i % 9}" for i, iso3 in enumerate(others)]
    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(_mirror_without_ilostat(tmp_path, rows)))
    monkeypatch.setenv("RADAR_USER_FILES", str(tmp_path / "none"))
    path = tmp_path / "radar.duckdb"
    outcome = refresh_edition(2024, warehouse=path)
    assert outcome.success, outcome.failures
    filled = q(path, """select s.iso3, s.method, s.imputed_from, s.score, c.income_group from indicator_scores s
                        join edition_countries c using (edition, iso3)
                        where s.edition = 2024 and s.indicator_id = 'ilo_weekly_hours' and s.imputed order by 1""")
    assert filled["iso3"].to_list() == oceania
    # no Oceania country has a value: each is filled from its income group anywhere (peers first,
    # METHODOLOGY §2.3), the donors named and all of that group
    assert set(filled["method"]) == {"income_group_mean"}
    groups = dict(q(path, "select iso3, income_group from edition_countries where edition = 2024").iter_rows())
    direct = dict(q(path, """select iso3, score from indicator_scores where edition = 2024
                             and indicator_id = 'ilo_weekly_hours' and method = 'direct'""").iter_rows())
    for r in filled.iter_rows(named=True):
        donors = r["imputed_from"].split(",")
        assert donors == sorted(c for c in direct if groups[c] == r["income_group"])
        assert r["score"] == pytest.approx(sum(direct[c] for c in donors) / len(donors))
    conf = q(path, """select iso3, confidence from country_topic_risk
                      where edition = 2024 and topic = 'working_hours' and iso3 in ('AUS', 'DNK') order by 1""")
    assert conf.rows() == [("AUS", 0.5), ("DNK", 1.0)]
    assert q(path, "select count(*) as n from indicator_scores where method = 'world_mean' "
             "and indicator_id = 'ilo_weekly_hours'")["n"][0] == 0

    # without income groups (no CLASS file) only geography is left: the world mean, confidence 0,
    # and the run says which indicator, topic and region
    shutil.rmtree(tmp_path / "mirror" / "worldbank_class")
    path = tmp_path / "radar2.duckdb"
    outcome = refresh_edition(2024, warehouse=path)
    assert outcome.success, outcome.failures
    filled = q(path, """select iso3, imputed_from from indicator_scores
                        where edition = 2024 and indicator_id = 'ilo_weekly_hours' and method = 'world_mean'
                        order by iso3""")
    assert filled["iso3"].to_list() == oceania
    assert set(filled["imputed_from"]) == {",".join(sorted(direct))}
    conf = q(path, """select iso3, confidence from country_topic_risk
                      where edition = 2024 and topic = 'working_hours' and iso3 in ('AUS', 'DNK') order by 1""")
    assert conf.rows() == [("AUS", 0.0), ("DNK", 1.0)]
    meta = list(outcome.result.asset_materializations_for_node("indicator_scores"))
    table = meta[0].metadata["world_mean_fills"].value
    assert "ilo_weekly_hours" in table and "working_hours" in table and "Oceania" in table
    (countries_event,) = outcome.result.asset_materializations_for_node("countries")
    assert countries_event.metadata["income_vintage"].value.startswith("none")


def test_topic_without_data_names_topic_indicator_and_countries(tmp_path, monkeypatch):
    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(_mirror_without_ilostat(tmp_path, None)))
    monkeypatch.setenv("RADAR_USER_FILES", str(tmp_path / "none"))
    outcome = refresh_edition(2024, warehouse=tmp_path / "radar.duckdb")
    assert not outcome.success
    message = outcome.failures["country_topic_risk"]
    assert "working_hours" in message and "ilo_weekly_hours" in message
    assert "all 32 countries" in message and "--allow-missing-topics working_hours" in message


def test_integrity_check_names_what_is_lacking():
    from radar_pipeline.platform.warehouse import ensure_schema

    con = duckdb.connect()
    ensure_schema(con)
    con.execute("""insert into edition_countries (edition, iso3, name, region, subregion, m49_vintage) values
                   (2024, 'AUS', 'Australia', 'Oceania', 'Australia and New Zealand', 'x'),
                   (2024, 'DNK', 'Denmark', 'Europe', 'Northern Europe', 'x')""")
    con.execute("""insert into indicator_registry (indicator_id, topic, source, direction, max_age_years,
                   min_countries)
                   values ('ilo_weekly_hours', 'working_hours', 'ilostat', 'higher_is_riskier', 5, 100)""")
    con.execute("""insert into country_topic_risk (edition, iso3, topic, score, n_indicators, n_imputed,
                   confidence, missing_topics) values (2024, 'DNK', 'working_hours', 2.0, 1, 0, 1.0, '')""")
    passed, meta = integrity.country_topic_risk_complete(con, 2024)
    assert not passed
    assert meta["lacking"] == "topic working_hours (indicators ilo_weekly_hours): regions Oceania: countries AUS"


def test_warehouse_with_the_old_shared_countries_table_is_migrated(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("""create table countries (iso3 varchar primary key, iso2 varchar, m49 varchar, name varchar,
                   region varchar, subregion varchar, intermediate_region varchar, ldc boolean, lldc boolean,
                   sids boolean)""")
    con.execute("insert into countries values ('DNK', 'DK', '208', 'Denmark', 'Europe', 'Northern Europe', "
                "null, false, false, false)")
    con.execute("create table country_topic_risk (edition integer, iso3 varchar, topic varchar)")
    con.execute("insert into country_topic_risk values (2022, 'DNK', 'gender'), (2023, 'DNK', 'gender')")
    con.close()
    con = connect(path)
    try:
        assert con.sql("select edition, iso3 from edition_countries order by 1").fetchall() == [
            (2022, "DNK"), (2023, "DNK")]
        assert con.sql("select iso3, region from countries").fetchall() == [("DNK", "Europe")]
    finally:
        con.close()
