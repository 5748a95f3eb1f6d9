"""Issue 20 on the real publisher files (../shared/data/sources): every topic from a real file,
the coverage rule, peers-first gap filling, release months, and the country picture (published
table + picture) — checked against what any reader of the publishers' tables expects."""
from __future__ import annotations

import dagster as dg
import duckdb
import polars as pl
import pytest

from radar_pipeline.cli.runs import refresh_edition
from radar_pipeline.pictures import assets as pictures
from radar_pipeline.platform.warehouse import DuckDBWarehouse
from radar_pipeline.publish.build import publish
from radar_pipeline.rules.methodology import TOPICS

pytestmark = pytest.mark.slow  # refreshes editions from the real files: `python -m pytest -m slow`


@pytest.fixture(scope="module")
def shared_2023(shared_sources, tmp_path_factory):
    """Editions 2023 and 2024 refreshed from the real files with NO topic allowed missing."""
    tmp = tmp_path_factory.mktemp("shared2023")
    mp = pytest.MonkeyPatch()
    mp.setenv("RADAR_SOURCES_MIRROR", str(shared_sources))
    mp.setenv("RADAR_USER_FILES", str(tmp / "no-user-files"))
    mp.setenv("RADAR_LANDING", str(tmp / "landing"))
    mp.delenv("RADAR_MIN_COUNTRIES_CAP", raising=False)
    try:
        path = tmp / "radar.duckdb"
        for edition in (2023, 2024):
            outcome = refresh_edition(edition, allow_missing_topics=[], warehouse=path)
            assert outcome.success, outcome.failures
    finally:
        mp.undo()
    return path


def q(path, sql: str, **params) -> pl.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql(sql, params=params or None).pl()
    finally:
        con.close()


def percentile(path, edition: int, topic: str) -> dict[str, float]:
    df = q(path, "select iso3, percent_rank() over (order by score) as p from country_topic_risk "
                 "where edition = $e and topic = $t", e=edition, t=topic)
    return dict(df.iter_rows())


def test_all_14_topics_from_real_files(shared_2023):
    for edition in (2023, 2024):
        got = q(shared_2023, "select distinct topic, missing_topics from country_topic_risk where edition = $e",
                e=edition)
        assert set(got["topic"]) == set(TOPICS) and set(got["missing_topics"]) == {""}


def test_coverage_rule_leaves_out_informal_employment(shared_2023):
    cov = q(shared_2023, "select * from indicator_coverage where edition = 2023 and indicator_id = "
                         "'wb_informal_employment'").row(0, named=True)
    assert (cov["included"], cov["n_countries"], cov["min_countries"]) == (False, 20, 100)
    assert q(shared_2023, "select count(*) as n from indicator_scores where edition = 2023 and indicator_id = "
                          "'wb_informal_employment'")["n"][0] == 0
    left = q(shared_2023, "select left_out from edition_sources where edition = 2023 and source = 'worldbank_wdi' "
                          "and left_out is not null")["left_out"].to_list()
    assert left == ["wb_informal_employment: 20 countries < min_countries 100"]
    report = q(shared_2023, "select indicators_left_out from coverage_report where edition = 2023 and topic = "
                            "'forced_labour'")["indicators_left_out"][0]
    assert report == "wb_informal_employment observed for 20 countries < min_countries 100"
    # child labour counts from its own threshold (80) over a 12-year window
    child = q(shared_2023, "select * from indicator_coverage where edition = 2023 and indicator_id = "
                           "'unicef_child_labour'").row(0, named=True)
    assert child["included"] and child["min_countries"] == 80 and child["n_countries"] >= 80


def test_the_country_picture_agrees_with_the_world(shared_2023):
    # Russia and Belarus no longer get Serbia's informal employment (issue 20: was the 29th percentile)
    fl = percentile(shared_2023, 2023, "forced_labour")
    assert fl["RUS"] >= 0.8 and fl["BLR"] >= 0.8 and fl["DEU"] < 0.2
    # rich economies without a poverty survey are filled from their income peers, not their region
    wages = percentile(shared_2023, 2023, "wages")
    assert max(wages[c] for c in ("SGP", "BRN", "HKG", "KOR")) < min(wages[c] for c in ("YEM", "SYR", "HTI"))
    # Freedom House E3 observes the countries ITUC does not rate
    foa = percentile(shared_2023, 2023, "freedom_of_association")
    assert foa["PRK"] >= 0.9 and foa["CUB"] >= 0.9 and foa["DNK"] < 0.1
    sgp = q(shared_2023, "select method, imputed_from from indicator_scores where edition = 2023 and iso3 = 'SGP' "
                         "and indicator_id = 'wb_poverty_umic'").row(0, named=True)
    assert sgp["method"].startswith("peer_") or sgp["method"] == "income_group_mean"
    donors = sgp["imputed_from"].split(",")
    groups = set(q(shared_2023, "select income_group from edition_countries where edition = 2023 and "
                                "list_contains($d, iso3)", d=donors)["income_group"])
    assert groups == {"high"} and len(donors) >= 3


def test_water_stress_is_clipped_at_100(shared_2023):
    ws = q(shared_2023, "select iso3, value, score from indicator_scores where edition = 2023 "
                        "and indicator_id = 'fao_water_stress' and method = 'direct'")
    over = ws.filter(pl.col("value") >= 100)
    assert over.height > 5 and (over["score"] == 6.0).all()   # Saudi Arabia's 974 % and Egypt's 141 % alike
    ind = ws.filter(pl.col("iso3") == "IND").row(0, named=True)
    assert ind["value"] == pytest.approx(66.49, abs=0.01)
    assert ind["score"] == pytest.approx(1 + 5 * (66.49 - ws["value"].min()) / (100 - ws["value"].min()), abs=0.01)


def test_cpi_release_months_decide_the_vintage(shared_2023):
    rows = q(shared_2023, "select edition, vintage, released_after_edition, release_year from edition_sources "
                          "where source = 'ti_cpi' order by all")
    # CPI 2023 came out in January 2024: edition 2023 has only it, as the flagged oldest vintage;
    # CPI 2024 (February 2025) is read by neither edition
    assert rows.rows() == [(2023, "2023", True, 2024), (2024, "2023", False, 2024)]


def test_country_picture_published_and_drawn(shared_2023, tmp_path, monkeypatch):
    out = tmp_path / "published" / "radar.duckdb"
    publish(shared_2023, out, log=lambda *a, **k: None)
    pic = q(out, "select * from country_picture")
    n_countries = q(shared_2023, "select count(*) as n from edition_countries where edition = 2024")["n"][0]
    assert set(pic["edition"]) == {2024} and pic.height == n_countries * len(TOPICS)
    rus = pic.filter((pl.col("iso3") == "RUS") & (pl.col("topic") == "business_ethics")).row(0, named=True)
    assert rus["methods"] == "direct" and rus["confidence"] == 1.0 and not rus["thin"]
    assert rus["indicators"].startswith("ti_cpi_score direct 2023 = 26")
    thin = pic.filter(pl.col("thin"))
    assert thin.height and (thin["confidence"] < 0.5).all()
    filled = pic.filter(pl.col("methods").str.contains("peer_")).row(0, named=True)
    assert " of " in filled["indicators"]

    monkeypatch.setenv("RADAR_PICTURES", str(tmp_path / "pictures"))
    monkeypatch.delenv("RADAR_PICTURES_URL", raising=False)
    result = dg.materialize([pictures.country_picture], partition_key="2024",
                            resources={"warehouse": DuckDBWarehouse(database=str(shared_2023))})
    (event,) = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    png = tmp_path / "pictures" / "countries" / "country_picture_2024.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert meta["dagster/row_count"].value == n_countries * len(TOPICS)
    html = (tmp_path / "pictures" / "countries" / "country_picture_2024.html").read_text()
    assert "Every country x topic" in html and "RUS" in html
