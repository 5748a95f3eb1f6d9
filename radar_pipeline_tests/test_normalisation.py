"""METHODOLOGY §2 and §10 rules on the SQL itself with tiny synthetic tables: normalisation,
clipping, the coverage rule, peers-first gap filling (§2.3) and topic confidence (§8a)."""
from __future__ import annotations

import duckdb
import polars as pl
import pytest

from radar_pipeline.platform.warehouse import ensure_schema, read_sql
from radar_pipeline.rules import methodology, rule_sql

# iso3: (region, subregion, intermediate_region, income_group)
GEO = {
    "AAA": ("Africa", "Sub-Saharan Africa", "Western Africa", "low"),
    "BBB": ("Africa", "Sub-Saharan Africa", "Western Africa", "low"),
    "CCC": ("Africa", "Sub-Saharan Africa", "Eastern Africa", "low"),
    "DDD": ("Africa", "Northern Africa", None, "lower_middle"),
    "EEE": ("Europe", "Northern Europe", None, "high"),
    "FFF": ("Europe", "Western Europe", None, "high"),
    "GGG": ("Europe", "Western Europe", None, None),           # unclassified (e.g. Venezuela-like)
}


def countries(geo: dict) -> pl.DataFrame:
    n = len(geo)
    return pl.DataFrame({
        "iso3": list(geo), "iso2": [c[:2] for c in geo], "m49": [str(100 + i) for i in range(n)],
        "name": list(geo), "region": [g[0] for g in geo.values()], "subregion": [g[1] for g in geo.values()],
        "intermediate_region": [g[2] for g in geo.values()], "ldc": [False] * n, "lldc": [False] * n,
        "sids": [False] * n, "m49_vintage": ["test"] * n, "income_group": [g[3] for g in geo.values()],
        "income_vintage": ["test"] * n})


def make_db(registry: list[tuple], obs: list[tuple[str, str, int, float]], edition=2023, geo=None):
    """registry rows: (indicator_id, topic, direction[, min_countries[, clip_min, clip_max]])."""
    con = duckdb.connect()
    ensure_schema(con)
    rule_sql.install(con)  # the rule macros the SQL calls (clip_value)
    c = countries(geo or GEO)  # noqa: F841 — DuckDB reads it by name
    con.execute("insert into edition_countries by name select $e as edition, * from c", {"e": edition})
    rows = [(*r[:3], r[3] if len(r) > 3 else 1, *(r[4:6] if len(r) > 4 else (None, None))) for r in registry]
    reg = pl.DataFrame(rows, schema={"indicator_id": pl.String, "topic": pl.String, "direction": pl.String,  # noqa: F841
                                     "min_countries": pl.Int32, "clip_min": pl.Float64, "clip_max": pl.Float64},
                       orient="row").with_columns(source=pl.lit("x"), unit=pl.lit(None, pl.String),
                                                  note=pl.lit(None, pl.String), max_age_years=pl.lit(5, pl.Int32))
    con.execute("insert into indicator_registry by name select * from reg")
    o = pl.DataFrame(obs, schema=["indicator_id", "iso3", "data_year", "value"], orient="row").with_columns(  # noqa: F841
        edition=pl.lit(edition), source=pl.lit("x"), vintage=pl.lit("v"), file=pl.lit("f"), row_ref=pl.lit("r"))
    con.execute("insert into indicator_observations by name select * from o")
    return con


def scores(con, edition=2023, min_donors=3, cap=1_000_000) -> dict[tuple[str, str], dict]:
    cov = con.sql(read_sql("country_risk/indicator_coverage"),  # noqa: F841
                  params={"edition": edition, "min_countries_cap": cap}).pl()
    con.execute("delete from indicator_coverage")
    con.execute("insert into indicator_coverage by name select *, 'v' as methodology_version from cov")
    df = con.sql(read_sql("country_risk/indicator_scores"), params={"edition": edition, "min_donors": min_donors}).pl()
    return {(r["indicator_id"], r["iso3"]): r for r in df.iter_rows(named=True)}


def topics(con, s: dict, edition=2023) -> pl.DataFrame:
    rows = pl.DataFrame(list(s.values()))  # noqa: F841 — DuckDB reads it by name
    con.execute("delete from indicator_scores")
    con.execute("insert into indicator_scores by name select * from rows")
    return con.sql(read_sql("country_risk/country_topic_risk"), params={"edition": edition, "missing_topics": ""}).pl()


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


def test_clipping_example_water_stress_at_100():
    # §10: observed 10, 55, 100 and 974 with clip_max 100 -> 10, 55, 100, 100 -> 1.0, 3.5, 6.0, 6.0
    con = make_db([("ws", "water", "higher_is_riskier", 1, None, 100.0)],
                  [("ws", "AAA", 2023, 10), ("ws", "BBB", 2023, 55), ("ws", "CCC", 2023, 100),
                   ("ws", "DDD", 2023, 974)])
    s = scores(con)
    assert [s[("ws", c)]["score"] for c in ("AAA", "BBB", "CCC", "DDD")] == [1.0, 3.5, 6.0, 6.0]
    assert s[("ws", "DDD")]["value"] == 974  # the published value stays the publisher's
    # without the clip the same values squash everyone else towards 1
    con = make_db([("ws", "water", "higher_is_riskier")],
                  [("ws", "AAA", 2023, 10), ("ws", "BBB", 2023, 55), ("ws", "CCC", 2023, 100),
                   ("ws", "DDD", 2023, 974)])
    assert scores(con)[("ws", "BBB")]["score"] == pytest.approx(1 + 5 * 45 / 964)


def test_clip_min_raises_low_values_to_the_bound():
    con = make_db([("i", "wages", "higher_is_riskier", 1, 5.0, None)],
                  [("i", "AAA", 2023, -20), ("i", "BBB", 2023, 5), ("i", "CCC", 2023, 15)])
    s = scores(con)
    assert [s[("i", c)]["score"] for c in ("AAA", "BBB", "CCC")] == [1.0, 1.0, 6.0]


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


# --- coverage rule (§2, §10) -------------------------------------------------------------

def _many(n: int) -> dict:
    """n synthetic countries over two regions and two income groups."""
    return {f"C{i:02d}": (("Asia", "Eastern Asia", None, "high") if i % 2 else
                          ("Africa", "Sub-Saharan Africa", "Western Africa", "low")) for i in range(n)}


def test_coverage_example_indicator_below_min_countries_is_left_out():
    # §10: an indicator observed for 20 countries (below min_countries 100) is left out of the
    # edition: no score, no imputation, and the topic is the mean of its other indicators.
    geo = _many(30)
    thin = [("thin", c, 2023, float(i)) for i, c in enumerate(list(geo)[:20])]
    wide = [("wide", c, 2023, float(i % 7)) for i, c in enumerate(geo)]
    con = make_db([("thin", "forced_labour", "higher_is_riskier", 100),
                   ("wide", "forced_labour", "lower_is_riskier", 25)], thin + wide, geo=geo)
    s = scores(con)
    assert not [k for k in s if k[0] == "thin"], "a left-out indicator gets no score and imputes nothing"
    cov = {r["indicator_id"]: r for r in con.sql("select * from indicator_coverage").pl().iter_rows(named=True)}
    assert (cov["thin"]["included"], cov["thin"]["n_countries"], cov["thin"]["min_countries"]) == (False, 20, 100)
    assert cov["thin"]["reason"] == "observed for 20 countries < min_countries 100"
    assert cov["wide"]["included"] and cov["wide"]["reason"] is None
    t = topics(con, s)
    assert set(t["n_indicators"]) == {1}
    one = t.filter(pl.col("iso3") == "C05").row(0, named=True)
    assert one["score"] == s[("wide", "C05")]["score"]
    # the run's cap (the synthetic sample mirror) lowers every threshold
    s = scores(con, cap=10)
    assert ("thin", "C25") in s and s[("thin", "C25")]["imputed"]


# --- peers-first gap filling (§2.3, §10) -------------------------------------------------

PEERS = {
    # Europe: sub-region "Southern Europe" has T (no value) and two high-income donors; "Northern
    # Europe" has two more high-income donors; a low-income Europe country; an African range-setter.
    "TTT": ("Europe", "Southern Europe", None, "high"),
    "HI1": ("Europe", "Southern Europe", None, "high"),
    "HI2": ("Europe", "Southern Europe", None, "high"),
    "HI3": ("Europe", "Northern Europe", None, "high"),
    "HI4": ("Europe", "Northern Europe", None, "high"),
    "LO1": ("Europe", "Southern Europe", None, "low"),
    "AF1": ("Africa", "Northern Africa", None, "low"),
    "AF2": ("Africa", "Northern Africa", None, "low"),
    "AF3": ("Africa", "Northern Africa", None, "low"),
    "AF4": ("Africa", "Northern Africa", None, "high"),
    "UNC": ("Europe", "Southern Europe", None, None),
    "OCE": ("Oceania", "Melanesia", None, None),
}


def test_gap_fill_example_peer_region_mean():
    # §10: a high-income country whose sub-region has 2 high-income countries with a value (not
    # enough) and whose region has 4 (normalised 1.2, 1.4, 1.0, 1.8) gets 1.35, method
    # peer_region_mean, confidence 0.5. Values 0..50 so that 2 -> 1.2, 4 -> 1.4, 0 -> 1.0, 8 -> 1.8.
    obs = [("i", "HI1", 2023, 2), ("i", "HI2", 2023, 4), ("i", "HI3", 2023, 0), ("i", "HI4", 2023, 8),
           ("i", "AF1", 2023, 50)]
    con = make_db([("i", "wages", "higher_is_riskier")], obs, geo=PEERS)
    s = scores(con)
    assert [s[("i", c)]["score"] for c in ("HI1", "HI2", "HI3", "HI4")] == pytest.approx([1.2, 1.4, 1.0, 1.8])
    t = s[("i", "TTT")]
    assert t["method"] == "peer_region_mean" and t["imputed"] and t["value"] is None
    assert t["score"] == pytest.approx(1.35)
    assert t["imputed_from"] == "HI1,HI2,HI3,HI4"
    conf = dict(topics(con, s).select("iso3", "confidence").iter_rows())
    assert conf["TTT"] == 0.5


def test_gap_fill_order_peers_then_geography_then_world():
    obs = [("i", c, 2023, v) for c, v in
           (("HI1", 10), ("HI2", 20), ("HI3", 30), ("AF1", 40), ("AF2", 50), ("AF3", 60))]
    con = make_db([("i", "wages", "higher_is_riskier")], obs, geo=PEERS)
    s = scores(con)
    # 1. same sub-region and income group: TTT has HI1, HI2 only (2 < 3); 2. same region and
    # income group: HI1, HI2, HI3 -> peer_region_mean
    assert s[("i", "TTT")]["method"] == "peer_region_mean"
    assert s[("i", "TTT")]["imputed_from"] == "HI1,HI2,HI3"
    # AF4 (high income, Northern Africa): no high-income peer in Africa -> income group anywhere
    assert s[("i", "AF4")]["method"] == "income_group_mean"
    assert s[("i", "AF4")]["imputed_from"] == "HI1,HI2,HI3"
    # LO1 (low income, Southern Europe): low-income peers are AF1-3 (another region) -> income group
    assert s[("i", "LO1")]["method"] == "income_group_mean"
    assert s[("i", "LO1")]["imputed_from"] == "AF1,AF2,AF3"
    # UNC has no income group: skips 1-3; Southern Europe has HI1, HI2 (2 < 3) -> region Europe
    assert s[("i", "UNC")]["method"] == "region_mean"
    assert s[("i", "UNC")]["imputed_from"] == "HI1,HI2,HI3"
    # OCE: unclassified, nothing in Melanesia or Oceania -> world mean of every observed country
    w = s[("i", "OCE")]
    assert w["method"] == "world_mean" and w["imputed_from"] == "AF1,AF2,AF3,HI1,HI2,HI3"
    assert w["score"] == pytest.approx(sum(s[("i", c)]["score"] for c in ("HI1", "HI2", "HI3", "AF1", "AF2",
                                                                             "AF3")) / 6)
    conf = dict(topics(con, s).select("iso3", "confidence").iter_rows())
    assert (conf["HI1"], conf["TTT"], conf["AF4"], conf["UNC"], conf["OCE"]) == (1.0, 0.5, 0.5, 0.25, 0.0)


def test_gap_fill_min_donors_is_a_rule_setting():
    obs = [("i", "HI1", 2023, 10), ("i", "HI2", 2023, 20), ("i", "LO1", 2023, 30), ("i", "AF1", 2023, 40)]
    con = make_db([("i", "wages", "higher_is_riskier")], obs, geo=PEERS)
    two = scores(con, min_donors=2)[("i", "TTT")]
    assert (two["method"], two["imputed_from"]) == ("peer_subregion_mean", "HI1,HI2")
    # with 3, no income peer group is large enough: Southern Europe (HI1, HI2, LO1) fills it
    three = scores(con, min_donors=3)[("i", "TTT")]
    assert (three["method"], three["imputed_from"]) == ("subregion_mean", "HI1,HI2,LO1")


def test_subregion_mean_uses_the_intermediate_region_where_there_is_one():
    geo = {**GEO, "WA1": ("Africa", "Sub-Saharan Africa", "Western Africa", None)}
    obs = [("i", c, 2023, v) for c, v in (("AAA", 0), ("BBB", 10), ("CCC", 30), ("EEE", 20))]
    con = make_db([("i", "wages", "higher_is_riskier")], obs, geo=geo)
    s = scores(con, min_donors=2)
    # WA1 is unclassified: its local group is Western Africa (AAA, BBB)
    assert s[("i", "WA1")]["method"] == "subregion_mean" and s[("i", "WA1")]["imputed_from"] == "AAA,BBB"


def test_topic_is_mean_of_indicators():
    con = make_db([("a", "gender", "higher_is_riskier"), ("b", "gender", "lower_is_riskier")],
                  [("a", "AAA", 2023, 0), ("a", "BBB", 2023, 10), ("b", "AAA", 2023, 0), ("b", "BBB", 2023, 10)])
    t = topics(con, scores(con, min_donors=2))
    aaa = t.filter(pl.col("iso3") == "AAA").row(0, named=True)
    assert aaa["score"] == pytest.approx((1.0 + 6.0) / 2) and aaa["n_indicators"] == 2
    ccc = t.filter(pl.col("iso3") == "CCC").row(0, named=True)
    assert ccc["n_imputed"] == 2


def test_confidence_table_matches_the_sql():
    # the §8a weights live in methodology.IMPUTATION_CONFIDENCE and in country_topic_risk.sql
    sql = read_sql("country_risk/country_topic_risk")
    for method, weight in methodology.IMPUTATION_CONFIDENCE.items():
        if method != "world_mean":
            assert f"when '{method}' then {weight}" in sql
    assert methodology.IMPUTATION_CONFIDENCE["world_mean"] == 0.0 and "else 0.0" in sql


def test_gap_filling_settings_are_validated(tmp_path):
    p = tmp_path / "gap_filling.csv"
    p.write_text("setting,value,reason\nmin_donors,x,why\n")
    with pytest.raises(ValueError, match=r"line 2: min_donors = 'x'"):
        methodology.gap_filling_settings(p)
    p.write_text("setting,value,reason\nmin_donor,3,why\n")
    with pytest.raises(ValueError, match="unknown setting 'min_donor'"):
        methodology.gap_filling_settings(p)
    assert methodology.gap_filling_settings()["min_donors"] == 3


def _stored(con, s: dict) -> None:
    rows = pl.DataFrame(list(s.values())).with_columns(methodology_version=pl.lit("v"))  # noqa: F841
    con.execute("delete from indicator_scores")
    con.execute("insert into indicator_scores by name select * from rows")


def test_flat_warning_looks_at_the_values_used():
    from radar_pipeline.country_risk.assets import flat_indicators

    # older years differ, the latest values are equal: the rule's values are flat (3.5 for all)
    con = make_db([("flat", "water", "higher_is_riskier"), ("varied", "water", "higher_is_riskier")],
                  [("flat", "AAA", 2020, 1), ("flat", "AAA", 2023, 7), ("flat", "BBB", 2023, 7),
                   ("varied", "AAA", 2023, 1), ("varied", "BBB", 2023, 2)])
    s = scores(con)
    _stored(con, s)
    assert flat_indicators(con, 2023) == ["flat"]
    assert s[("flat", "AAA")]["score"] == 3.5
    # clipping can make an indicator flat: 150 and 300 both become 100
    con = make_db([("ws", "water", "higher_is_riskier", 1, None, 100.0)],
                  [("ws", "AAA", 2023, 150), ("ws", "BBB", 2023, 300)])
    s = scores(con)
    _stored(con, s)
    assert flat_indicators(con, 2023) == ["ws"] and s[("ws", "BBB")]["score"] == 3.5
