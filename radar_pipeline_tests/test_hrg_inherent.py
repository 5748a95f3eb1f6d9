"""High-risk goods (§4) and inherent risk (§5): real ILAB / CAHRA files, rule tables, SQL."""
from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

from radar_pipeline.sectors.hrg import build_high_risk_goods, load_rule, select_vintage
from radar_pipeline.sectors.sql import read_sql, run_sql
from radar_pipeline.sources.adapters.eu_cahra import parse_cahra
from radar_pipeline.sources.adapters.ilab_list_of_goods import parse_goods
from radar_pipeline.sources.toolkit import LandedFile, SourceError

TOPICS = ["wages", "children", "forced_labour", "regular_employment", "gender", "discrimination",
          "freedom_of_association", "working_hours", "health_safety", "business_ethics",
          "energy_emissions", "biodiversity", "waste_pollution", "water"]


# ---------------------------------------------------------------- fixtures ---------

@pytest.fixture(scope="module")
def ilab(shared_sources: Path) -> pl.DataFrame:
    f = shared_sources / "ilab_list_of_goods" / "2022" / "goods_2021.xml"
    return parse_goods([LandedFile("ilab_list_of_goods", "2022", f)])


@pytest.fixture(scope="module")
def cahra(shared_sources: Path) -> pl.DataFrame:
    f = shared_sources / "eu_cahra" / "2026-06" / "cahra.json"
    return parse_cahra([LandedFile("eu_cahra", "2026-06", f)])


@pytest.fixture(scope="module")
def isic_classes(shared_sources: Path) -> set[str]:
    f = shared_sources / "unsd_isic" / "rev4" / "ISIC_Rev_4_english_structure.txt"
    codes = pl.read_csv(f, infer_schema=False).get_column("Code")
    return set(codes.filter(codes.str.contains(r"^\d{4}$")).to_list())


@pytest.fixture(scope="module")
def isic_codes(shared_sources: Path) -> set[str]:
    f = shared_sources / "unsd_isic" / "rev4" / "ISIC_Rev_4_english_structure.txt"
    return set(pl.read_csv(f, infer_schema=False).get_column("Code").to_list())


def _rules():
    return {"goods_isic": load_rule("goods_isic"), "deforestation": load_rule("deforestation_default"),
            "low_risk": load_rule("eudr_low_risk_countries")}


def _uplift(hrg: pl.DataFrame, edition: int) -> pl.DataFrame:
    con = duckdb.connect()
    fli = load_rule("fli_covered_divisions")  # noqa: F841 — DuckDB reads it by name
    con.execute("create table high_risk_goods as select * from hrg")
    con.execute("create table fli_covered as select * from fli")
    return run_sql(con, "sectors/hrg_uplift", edition=edition)


def _up(df: pl.DataFrame, iso3: str, cls: str, topic: str):
    hit = df.filter((pl.col("iso3") == iso3) & (pl.col("isic_class") == cls) & (pl.col("topic") == topic))
    return hit.get_column("uplift").item() if hit.height else None


def _ilab_row(good, iso3, *, child=False, forced=False, fcl=False, vintage="2022"):
    return {"good": good, "good_sector": "Manufacturing", "country": iso3, "iso3": iso3,
            "child_labor": child, "forced_labor": forced, "forced_child_labor": fcl, "derived": False,
            "derived_country": None, "derived_iso3": None, "vintage": vintage, "file": "synthetic.xml",
            "row_ref": "-"}


EMPTY_CAHRA = pl.DataFrame(schema={"iso3": pl.String, "country": pl.String, "whole_country": pl.Boolean,
                                   "n_regions": pl.Int32, "vintage": pl.String, "file": pl.String})


# ---------------------------------------------------------------- real files -------

def test_ilab_real_file_counts(ilab):
    assert ilab.get_column("good").n_unique() == 169
    assert ilab.height == 467
    assert ilab.get_column("iso3").n_unique() == 78
    assert ilab.get_column("child_labor").sum() == 414
    assert ilab.get_column("forced_labor").sum() == 121
    # ILAB naming goes through country_converter
    names = dict(ilab.select("country", "iso3").unique().iter_rows())
    assert names["Burma"] == "MMR" and names["North Korea"] == "PRK" and names["Côte d'Ivoire"] == "CIV"
    # derived rows: kept, flagged, with the input's country (batteries in China, cobalt from the DRC)
    derived = ilab.filter(pl.col("derived"))
    assert derived.height == 10
    batt = derived.filter(pl.col("good") == "Lithium-Ion Batteries").row(0, named=True)
    assert (batt["iso3"], batt["derived_iso3"]) == ("CHN", "COD")


def test_cahra_real_file(cahra):
    assert cahra.height == 29
    assert set(cahra.filter(pl.col("whole_country")).get_column("iso3")) == {"BDI", "ERI", "LBY", "VEN", "ZWE"}
    regional = cahra.filter(~pl.col("whole_country"))
    assert (regional.get_column("n_regions") > 0).all()


def test_every_ilab_good_is_mapped_to_real_isic_classes(ilab, cahra, isic_classes, isic_codes):
    rules = _rules()
    countries = pl.concat([ilab.select("iso3"), cahra.select("iso3")]).unique()
    hrg, unmapped = build_high_risk_goods(2024, ilab, cahra, countries=countries, **rules)
    assert unmapped.is_empty(), unmapped
    # every mapped class exists in the publisher's ISIC Rev.4 structure
    assert set(rules["goods_isic"].get_column("isic_class")) <= isic_classes
    assert set(rules["deforestation"].get_column("isic_class")) <= isic_classes
    assert set(load_rule("fli_covered_divisions").get_column("isic_code")) <= isic_codes
    # every good of the file has a mapping row (NFC-insensitive: ILAB writes "Açaí" decomposed)
    mapped = set(rules["goods_isic"].get_column("good").str.normalize("NFC"))
    assert set(ilab.get_column("good").str.normalize("NFC")) <= mapped
    assert set(hrg.get_column("risk_type")) == {"child_labour", "forced_labour", "deforestation",
                                                "conflict_minerals"}


def test_real_uplifts_cocoa_and_conflict_minerals(ilab, cahra):
    countries = pl.concat([ilab.select("iso3"), cahra.select("iso3")]).unique()
    hrg, _ = build_high_risk_goods(2024, ilab, cahra, countries=countries, **_rules())
    civ_cocoa = hrg.filter((pl.col("iso3") == "CIV") & (pl.col("isic_class") == "0127"))
    assert {"child_labour", "deforestation"} <= set(civ_cocoa.get_column("risk_type"))
    up = _uplift(hrg, 2024)
    assert _up(up, "CIV", "0127", "children") == 2
    # VEN is a whole-country CAHRA: gold ore and smelting on forced labour and business ethics
    for cls in ("0729", "2420"):
        assert _up(up, "VEN", cls, "forced_labour") == 2
        assert _up(up, "VEN", cls, "business_ethics") == 2
    # a regional-only CAHRA counts too (§4)
    regional = cahra.filter(~pl.col("whole_country")).get_column("iso3")[0]
    assert _up(up, regional, "0729", "business_ethics") == 2
    # derived goods count for the producing country only: batteries → China, not the DRC
    batt = hrg.filter(pl.col("good") == "Lithium-Ion Batteries")
    assert set(batt.get_column("iso3")) == {"CHN"} and set(batt.get_column("risk_type")) == {"child_labour"}
    # no uplift for an unlisted pair
    assert _up(up, "CIV", "6419", "children") is None


# ---------------------------------------------------------------- rules, synthetic --

def test_forced_labour_reduction_for_fli_covered_classes():
    goods = pl.DataFrame([
        _ilab_row("Garments", "BGD", forced=True, child=True),  # 1410, 1430: apparel is FLI-covered
        _ilab_row("Bricks", "BGD", forced=True),                # 2392: not covered
        _ilab_row("Toys", "BGD", forced=True),                  # 3240: covered at class level
        _ilab_row("Electronics", "BGD", forced=True),           # 26xx: covered
    ])
    hrg, unmapped = build_high_risk_goods(2024, goods, EMPTY_CAHRA, countries=pl.DataFrame({"iso3": ["DEU"]}),
                                          **_rules())
    assert unmapped.is_empty()
    up = _uplift(hrg, 2024)
    assert _up(up, "BGD", "1410", "forced_labour") == 1
    assert _up(up, "BGD", "1430", "forced_labour") == 1
    assert _up(up, "BGD", "1410", "children") == 2       # reduction is on forced labour only
    assert _up(up, "BGD", "2392", "forced_labour") == 2
    assert _up(up, "BGD", "3240", "forced_labour") == 1
    assert _up(up, "BGD", "2610", "forced_labour") == 1
    assert _up(up, "BGD", "2392", "children") is None
    # DEU is EUDR low risk: no default deforestation rows
    assert hrg.filter(pl.col("risk_type") == "deforestation").is_empty()


def test_several_hits_take_the_max_not_the_sum():
    goods = pl.DataFrame([_ilab_row("Cocoa", "GHA", child=True), _ilab_row("Coffee", "GHA", child=True),
                          _ilab_row("Tea", "GHA", child=True, forced=True)])
    hrg, _ = build_high_risk_goods(2024, goods, EMPTY_CAHRA, countries=pl.DataFrame({"iso3": ["GHA"]}),
                                   **_rules())
    # three goods + the EUDR default (cocoa, coffee) on class 0127
    assert hrg.filter(pl.col("isic_class") == "0127").height == 6
    up = _uplift(hrg, 2024)
    assert _up(up, "GHA", "0127", "children") == 2
    assert _up(up, "GHA", "0127", "forced_labour") == 1   # primary agriculture is FLI-covered
    assert _up(up, "GHA", "0127", "biodiversity") == 2
    assert up.filter(pl.col("iso3") == "GHA").get_column("uplift").max() == 2


def test_unmapped_good_is_reported_not_dropped():
    goods = pl.DataFrame([_ilab_row("Moon Rocks", "BGD", child=True), _ilab_row("Bricks", "BGD", child=True)])
    hrg, unmapped = build_high_risk_goods(2024, goods, EMPTY_CAHRA, countries=pl.DataFrame({"iso3": ["DEU"]}),
                                          **_rules())
    assert unmapped.get_column("good").to_list() == ["Moon Rocks"]
    assert set(hrg.get_column("good")) == {"Bricks"}


def test_deforestation_default_and_user_file():
    rules = _rules()
    countries = pl.DataFrame({"iso3": ["BRA", "DEU", "IDN"]})
    no_goods = pl.DataFrame([_ilab_row("Bricks", "BGD", child=True)])
    hrg, _ = build_high_risk_goods(2024, no_goods, EMPTY_CAHRA, countries=countries, **rules)
    defo = hrg.filter(pl.col("risk_type") == "deforestation")
    assert set(defo.get_column("iso3")) == {"BRA", "IDN"}           # DEU benchmarked low risk
    assert {"0141", "0127", "0126", "0129", "0111", "0210", "0220", "1610"} <= set(
        defo.filter(pl.col("iso3") == "BRA").get_column("isic_class"))
    # a licensed list (e.g. Forest 500) replaces the default
    user = pl.DataFrame({"iso3": ["IDN", "IDN"], "good": ["Palm Fruit", "Unknown Crop"], "isic_class": [None, None]},
                        schema={"iso3": pl.String, "good": pl.String, "isic_class": pl.String})
    hrg, unmapped = build_high_risk_goods(2024, no_goods, EMPTY_CAHRA, countries=countries,
                                          user_deforestation=user, **rules)
    defo = hrg.filter(pl.col("risk_type") == "deforestation")
    assert defo.select("iso3", "isic_class").rows() == [("IDN", "0126")]
    assert "Unknown Crop" in unmapped.get_column("good").to_list()


def test_vintage_selection_by_edition():
    df = pl.DataFrame({"vintage": ["2020", "2022", "2026-06"], "x": [1, 2, 3]})
    assert select_vintage(df, 2024).get_column("x").to_list() == [2]
    assert select_vintage(df, 2021).get_column("x").to_list() == [1]
    assert select_vintage(df, 2019).get_column("x").to_list() == [1]   # none older: the oldest we have


# ---------------------------------------------------------------- parsers, synthetic --

_XML = """<?xml version="1.0"?>
<Goods><Good><Good_Name>Cocoa</Good_Name><Good_Sector>Agriculture</Good_Sector><Countries>
<Country><Country_Name>{name}</Country_Name><Child_Labor>Yes</Child_Labor><Forced_Labor>No</Forced_Labor>
<Forced_Child_Labor>No</Forced_Child_Labor><Derived_Labor_Exploitation>No</Derived_Labor_Exploitation>
<Derived_Country>No</Derived_Country></Country></Countries></Good></Goods>"""


def test_ilab_unmapped_country_names_file_and_value(tmp_path):
    f = tmp_path / "goods_x.xml"
    f.write_text(_XML.format(name="Atlantis"), encoding="utf-8")
    with pytest.raises(SourceError) as exc:
        parse_goods([LandedFile("ilab_list_of_goods", "2099", f)])
    assert "goods_x.xml" in str(exc.value) and "Atlantis" in str(exc.value)
    f.write_text(_XML.format(name="Côte d'Ivoire"), encoding="utf-8")
    assert parse_goods([LandedFile("ilab_list_of_goods", "2099", f)]).get_column("iso3").to_list() == ["CIV"]


def test_parsers_refuse_an_html_error_page(tmp_path):
    f = tmp_path / "cahra.json"
    f.write_text("<!DOCTYPE html><html><body>Service unavailable</body></html>")
    with pytest.raises(SourceError, match=r"cahra\.json"):
        parse_cahra([LandedFile("eu_cahra", "2099", f)])
    g = tmp_path / "goods.xml"
    g.write_text("<!DOCTYPE html><html><body>Service unavailable</body></html>")
    with pytest.raises(SourceError, match=r"goods\.xml"):
        parse_goods([LandedFile("ilab_list_of_goods", "2099", g)])


# ---------------------------------------------------------------- inherent risk SQL --

def _isic() -> pl.DataFrame:
    rows = [("A", "section", None, "A", None, None, False), ("01", "division", None, "A", "01", None, False),
            ("012", "group", None, "A", "01", "012", True), ("0127", "class", "beverage crops", "A", "01", "012", True),
            ("C", "section", None, "C", None, None, False), ("14", "division", None, "C", "14", None, False),
            ("141", "group", None, "C", "14", "141", False), ("1410", "class", "apparel", "C", "14", "141", False),
            ("23", "division", None, "C", "23", None, False), ("239", "group", None, "C", "23", "239", False),
            ("2392", "class", "bricks", "C", "23", "239", False)]
    return pl.DataFrame(rows, schema=["code", "level", "title", "section", "division", "grp", "is_primary_producer"],
                        orient="row")


def _weights(topics) -> pl.DataFrame:
    rows = [(s, "section", t, w) for s, w in (("A", 3), ("C", 2)) for t in topics]
    rows += [("14", "division", t, 4) for t in topics]  # apparel has its own rows; 23 inherits C
    return pl.DataFrame(rows, schema={"isic_code": pl.String, "level": pl.String, "topic": pl.String,
                                      "weight": pl.Int8}, orient="row")


def _con(country_scores: dict[str, float], uplift: pl.DataFrame, *, edition=2024,
         confidence: dict[str, float] | None = None) -> duckdb.DuckDBPyConnection:
    ctr = pl.DataFrame({"edition": edition, "iso3": "CIV", "topic": list(country_scores),  # noqa: F841
                        "score": list(country_scores.values()), "n_indicators": 1, "n_imputed": 0,
                        "confidence": [(confidence or {}).get(t, 1.0) for t in country_scores]})
    # read by DuckDB by name in the create table statements below
    isic = _isic()  # noqa: F841
    sw = _weights(list(country_scores))  # noqa: F841
    con = duckdb.connect()
    con.execute("create table country_topic_risk as select * from ctr")
    con.execute("create table isic as select * from isic")
    con.execute("create table sector_weights as select * from sw")
    con.execute("create table hrg_uplift as select * from uplift")
    return con


def _uplift_rows(rows):
    return pl.DataFrame(rows, schema={"edition": pl.Int32, "iso3": pl.String, "isic_class": pl.String,
                                      "topic": pl.String, "uplift": pl.Int32}, orient="row")


def test_section10_inherent_topic_is_capped_at_10():
    con = _con({"forced_labour": 5.2, "children": 5.2},
               _uplift_rows([(2024, "CIV", "1410", "children", 2), (2023, "CIV", "0127", "children", 2)]))
    ir = run_sql(con, "sectors/inherent_risk", edition=2024)
    assert ir.columns == ["edition", "iso3", "isic_class", "topic", "country_score", "sector_weight",
                          "hrg_uplift", "score"]
    assert ir.height == 3 * 2                      # 3 classes × 2 topics present in the edition
    r = ir.filter((pl.col("isic_class") == "1410") & (pl.col("topic") == "children")).row(0, named=True)
    assert (r["country_score"], r["sector_weight"], r["hrg_uplift"]) == (5.2, 4, 2)
    assert r["score"] == 10                        # 5.2 + 4 + 2 = 11.2 → 10
    r = ir.filter((pl.col("isic_class") == "2392") & (pl.col("topic") == "children")).row(0, named=True)
    assert (r["sector_weight"], r["hrg_uplift"]) == (2, 0)   # division 23 inherits section C; no HRG row
    assert r["score"] == pytest.approx(7.2)
    # the uplift of another edition does not leak in
    r = ir.filter((pl.col("isic_class") == "0127") & (pl.col("topic") == "children")).row(0, named=True)
    assert (r["hrg_uplift"], r["score"]) == (0, pytest.approx(8.2))


def test_sector_weighted_country_risk_inherits_section_weights():
    con = _con({"wages": 3.0}, _uplift_rows([]))
    sw = run_sql(con, "sectors/sector_weighted_country_risk", edition=2024)
    assert sw.columns == ["edition", "iso3", "isic_code", "level", "topic", "country_score", "sector_weight"]
    got = {r["isic_code"]: (r["level"], r["sector_weight"]) for r in sw.iter_rows(named=True)}
    assert got == {"A": ("section", 3), "C": ("section", 2), "01": ("division", 3),
                   "14": ("division", 4), "23": ("division", 2)}
    assert set(sw.get_column("country_score")) == {3.0}


def test_overall_mean_and_pillar_means_hand_worked():
    # class 2392 (weight 2, no uplift): topic score = country score + 2
    country = dict.fromkeys(TOPICS, 1.0)
    country.update({"wages": 2.0, "children": 4.0, "health_safety": 3.0, "business_ethics": 5.0,
                    "water": 6.0, "biodiversity": 2.0})
    con = _con(country, _uplift_rows([]))
    ir = run_sql(con, "sectors/inherent_risk", edition=2024)  # noqa: F841 — DuckDB reads it by name
    con.execute("create table inherent_risk as select * from ir")
    ov = run_sql(con, "sectors/inherent_risk_overall", edition=2024)
    assert ov.columns == ["edition", "iso3", "isic_class", "score", "labour_standards", "health_safety",
                          "business_ethics", "environment", "is_primary_producer", "missing_topics",
                          "confidence", "confidence_label"]
    r = ov.filter(pl.col("isic_class") == "2392").row(0, named=True)
    # topic scores: wages 4, children 6, six other labour topics 3 → labour = (4+6+6*3)/8 = 3.5
    assert r["labour_standards"] == pytest.approx(3.5)
    assert r["health_safety"] == pytest.approx(5.0)
    assert r["business_ethics"] == pytest.approx(7.0)
    # environment: energy 3, biodiversity 4, waste 3, water 8 → 4.5
    assert r["environment"] == pytest.approx(4.5)
    # overall is by topic, not by pillar: (28 + 5 + 7 + 18) / 14 = 58/14
    assert r["score"] == pytest.approx(58 / 14)
    assert r["missing_topics"] == ""
    assert (r["confidence"], r["confidence_label"]) == (1.0, "high")   # every topic observed
    assert r["is_primary_producer"] is False
    assert ov.filter(pl.col("isic_class") == "0127").get_column("is_primary_producer").item() is True


def test_overall_names_missing_topics():
    present = [t for t in TOPICS if t not in ("working_hours", "water")]
    con = _con(dict.fromkeys(present, 2.0), _uplift_rows([]))
    ir = run_sql(con, "sectors/inherent_risk", edition=2024)
    assert set(ir.get_column("topic")) == set(present)       # no rows for an absent topic
    con.execute("create table inherent_risk as select * from ir")
    ov = run_sql(con, "sectors/inherent_risk_overall", edition=2024)
    assert set(ov.get_column("missing_topics")) == {"working_hours,water"}
    r = ov.filter(pl.col("isic_class") == "1410").row(0, named=True)
    assert r["score"] == pytest.approx(6.0) and r["environment"] == pytest.approx(6.0)


def test_inherent_confidence_is_the_mean_over_14_topics_missing_counting_0():
    """§8a: two topics missing (0), one imputed from a region (0.5), one half-observed topic
    (0.75), ten observed (1): (10 + 0.5 + 0.75) / 14 = 0.8036 -> high; the same for every class."""
    present = [t for t in TOPICS if t not in ("working_hours", "water")]
    confidence = {present[0]: 0.5, present[1]: 0.75}
    con = _con(dict.fromkeys(present, 2.0), _uplift_rows([]), confidence=confidence)
    ir = run_sql(con, "sectors/inherent_risk", edition=2024)
    con.execute("create table inherent_risk as select * from ir")
    ov = run_sql(con, "sectors/inherent_risk_overall", edition=2024)
    assert ov["confidence"].to_list() == pytest.approx([(10 + 0.5 + 0.75) / 14] * ov.height)
    assert set(ov["confidence_label"]) == {"high"}
    # one more topic imputed from a region: (9 + 0.5 + 0.75 + 0.5) / 14 = 0.768 -> medium
    con2 = _con(dict.fromkeys(present, 2.0), _uplift_rows([]), confidence={**confidence, present[2]: 0.5})
    ir = run_sql(con2, "sectors/inherent_risk", edition=2024)  # noqa: F841 — DuckDB reads it by name
    con2.execute("create table inherent_risk as select * from ir")
    ov2 = run_sql(con2, "sectors/inherent_risk_overall", edition=2024)
    assert ov2["confidence"].to_list() == pytest.approx([10.75 / 14] * ov2.height)
    assert set(ov2["confidence_label"]) == {"medium"}


def test_sql_files_are_single_selects():
    for name in ("hrg_uplift", "sector_weighted_country_risk", "inherent_risk", "inherent_risk_overall"):
        sql = read_sql(f"sectors/{name}")
        body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
        assert body.strip().lower().startswith("with") and ";" not in body
        assert "$edition" in body
