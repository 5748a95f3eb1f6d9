"""METHODOLOGY §2 and §10 normalisation/gap-fill rules, on the SQL itself with tiny synthetic tables."""
from __future__ import annotations

import duckdb
import polars as pl
import pytest

from radar_pipeline.warehouse import ensure_schema, read_sql

COUNTRIES = pl.DataFrame({
    "iso3": ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"],
    "iso2": ["AA", "BB", "CC", "DD", "EE", "FF"], "m49": ["1", "2", "3", "4", "5", "6"],
    "name": list("ABCDEF"),
    "region": ["Africa", "Africa", "Africa", "Africa", "Europe", "Europe"],
    "subregion": ["Sub-Saharan Africa"] * 3 + ["Northern Africa", "Northern Europe", "Western Europe"],
    "intermediate_region": ["Western Africa", "Western Africa", "Eastern Africa", None, None, None],
    "ldc": [False] * 6, "lldc": [False] * 6, "sids": [False] * 6,
})


def make_db(registry: list[tuple[str, str, str]], obs: list[tuple[str, str, int, float]], edition=2023):
    con = duckdb.connect()
    ensure_schema(con)
    con.register("countries_df", COUNTRIES)
    con.execute("insert into edition_countries select $e, *, 'test' from countries_df", {"e": edition})
    reg = pl.DataFrame(registry, schema=["indicator_id", "topic", "direction"], orient="row").with_columns(  # noqa: F841
        source=pl.lit("x"), unit=pl.lit(None, pl.String), note=pl.lit(None, pl.String))
    con.execute("insert into indicator_registry by name select * from reg")
    o = pl.DataFrame(obs, schema=["indicator_id", "iso3", "data_year", "value"], orient="row").with_columns(  # noqa: F841
        edition=pl.lit(edition), source=pl.lit("x"), vintage=pl.lit("v"), file=pl.lit("f"), row_ref=pl.lit("r"))
    con.execute("insert into indicator_observations by name select * from o")
    return con


def scores(con, edition=2023) -> dict[tuple[str, str], dict]:
    df = con.sql(read_sql("country_risk/indicator_scores"), params={"edition": edition}).pl()
    return {(r["indicator_id"], r["iso3"]): r for r in df.iter_rows(named=True)}


def test_cpi_example_lower_is_riskier():
    con = make_db([("cpi", "business_ethics", "lower_is_riskier")],
                  [("cpi", "AAA", 2023, 90), ("cpi", "BBB", 2023, 11), ("cpi", "CCC", 2023, 50)])
    s = scores(con)
    assert s[("cpi", "AAA")]["score"] == 1.0
    assert s[("cpi", "BBB")]["score"] == 6.0
    assert s[("cpi", "CCC")]["score"] == pytest.approx(1 + 5 * 40 / 79)
    assert round(s[("cpi", "CCC")]["score"], 2) == 3.53


def test_ituc_example_higher_is_riskier():
    con = make_db([("ituc", "freedom_of_association", "higher_is_riskier")],
                  [("ituc", "AAA", 2023, 1), ("ituc", "BBB", 2023, 6), ("ituc", "CCC", 2023, 3)])
    s = scores(con)
    assert [s[("ituc", c)]["score"] for c in ("AAA", "BBB", "CCC")] == [1.0, 6.0, 3.0]


def test_flat_indicator_gets_midpoint():
    con = make_db([("flat", "water", "higher_is_riskier")],
                  [("flat", "AAA", 2023, 7), ("flat", "BBB", 2023, 7)])
    s = scores(con)
    assert s[("flat", "AAA")]["score"] == s[("flat", "BBB")]["score"] == 3.5


def test_latest_value_within_window_wins():
    con = make_db([("i", "wages", "higher_is_riskier")],
                  [("i", "AAA", 2019, 100), ("i", "AAA", 2022, 0), ("i", "BBB", 2021, 50)])
    s = scores(con)
    assert s[("i", "AAA")]["value"] == 0 and s[("i", "AAA")]["data_year"] == 2022


def test_gap_fill_subregion_then_region():
    # AAA, BBB in Western Africa; CCC alone in Eastern Africa (same sub-region Sub-Saharan Africa);
    # DDD alone in Northern Africa -> Africa region mean; EEE/FFF Europe.
    con = make_db([("i", "wages", "higher_is_riskier")],
                  [("i", "AAA", 2023, 0), ("i", "BBB", 2023, 10), ("i", "EEE", 2023, 20)])
    s = scores(con)
    a, b, e = (s[("i", c)]["score"] for c in ("AAA", "BBB", "EEE"))
    assert (a, b, e) == (1.0, 3.5, 6.0)
    ccc = s[("i", "CCC")]  # no Eastern Africa value -> Sub-Saharan Africa mean
    assert ccc["imputed"] and ccc["method"] == "subregion_mean" and ccc["imputed_from"] == "Sub-Saharan Africa"
    assert ccc["score"] == pytest.approx((a + b) / 2)
    ddd = s[("i", "DDD")]  # Northern Africa has no value -> Africa region mean
    assert ddd["method"] == "region_mean" and ddd["imputed_from"] == "Africa"
    assert ddd["score"] == pytest.approx((a + b) / 2)
    fff = s[("i", "FFF")]  # Western Europe empty, Europe has EEE
    assert fff["method"] == "region_mean" and fff["score"] == e
    assert ddd["value"] is None


def test_topic_is_mean_of_indicators():
    con = make_db([("a", "gender", "higher_is_riskier"), ("b", "gender", "lower_is_riskier")],
                  [("a", "AAA", 2023, 0), ("a", "BBB", 2023, 10), ("b", "AAA", 2023, 0), ("b", "BBB", 2023, 10)])
    df = scores(con)
    rows = pl.DataFrame([dict(r.items()) for r in df.values()])  # noqa: F841 — DuckDB reads it by name
    con.execute("insert into indicator_scores by name select * from rows")
    t = con.sql(read_sql("country_risk/country_topic_risk"),
                params={"edition": 2023, "missing_topics": ""}).pl()
    aaa = t.filter(pl.col("iso3") == "AAA").row(0, named=True)
    assert aaa["score"] == pytest.approx((1.0 + 6.0) / 2) and aaa["n_indicators"] == 2
    ccc = t.filter(pl.col("iso3") == "CCC").row(0, named=True)
    assert ccc["n_imputed"] == 2


def test_topic_confidence_counts_observed_one_region_half():
    # AAA observed on both, CCC imputed on both (Western Africa has AAA/BBB? no: CCC is Eastern Africa,
    # filled from Sub-Saharan Africa), BBB observed on one indicator and imputed on the other.
    con = make_db([("a", "gender", "higher_is_riskier"), ("b", "gender", "lower_is_riskier")],
                  [("a", "AAA", 2023, 0), ("a", "BBB", 2023, 10), ("b", "AAA", 2023, 0), ("b", "EEE", 2023, 10)])
    rows = pl.DataFrame(list(scores(con).values()))  # noqa: F841 — DuckDB reads it by name
    con.execute("insert into indicator_scores by name select * from rows")
    t = con.sql(read_sql("country_risk/country_topic_risk"),
                params={"edition": 2023, "missing_topics": ""}).pl()
    conf = dict(zip(t["iso3"], t["confidence"]))
    assert conf["AAA"] == 1.0
    assert conf["BBB"] == 0.75      # one observed (1) + one from Western Africa (0.5)
    assert conf["CCC"] == 0.5       # both from regional means
    # a world-mean fill counts 0 (METHODOLOGY §8a)
    con.execute("update indicator_scores set method = 'world_mean' where iso3 = 'CCC' and indicator_id = 'a'")
    t = con.sql(read_sql("country_risk/country_topic_risk"),
                params={"edition": 2023, "missing_topics": ""}).pl()
    assert dict(zip(t["iso3"], t["confidence"]))["CCC"] == 0.25


def test_region_without_any_value_gets_the_world_mean():
    # Europe (EEE, FFF) has no value at all: most local group, sub-region and region are empty
    con = make_db([("i", "gender", "higher_is_riskier")],
                  [("i", "AAA", 2023, 0), ("i", "BBB", 2023, 10), ("i", "CCC", 2023, 4)])
    s = scores(con)
    direct = [s[("i", c)]["score"] for c in ("AAA", "BBB", "CCC")]
    for iso3 in ("EEE", "FFF"):
        row = s[("i", iso3)]
        assert row["imputed"] and row["method"] == "world_mean" and row["imputed_from"] == "World"
        assert row["score"] == pytest.approx(sum(direct) / 3)
    # an intermediate region's mean is labelled as such (METHODOLOGY §2.3)
    assert s[("i", "DDD")]["method"] == "region_mean"
    con = make_db([("i", "gender", "higher_is_riskier")], [("i", "AAA", 2023, 0), ("i", "CCC", 2023, 4)])
    assert scores(con)[("i", "BBB")]["method"] == "intermediate_region_mean"
