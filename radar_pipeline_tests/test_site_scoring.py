"""Site scoring (METHODOLOGY §6-§10) over small synthetic tables."""
from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

from radar_pipeline.metadata import saq_table
from radar_pipeline.sites.scoring import (
    factor_rows,
    load_rules,
    read_controls,
    read_saq_factors,
    score_sites,
    total_available,
)

ISIC = pl.DataFrame({
    "code": ["C", "14", "141", "1410", "1420", "A", "01", "011", "0111"],
    "level": ["section", "division", "group", "class", "class", "section", "division", "group", "class"],
    "section": ["C"] * 5 + ["A"] * 4,
    "division": [None, "14", "14", "14", "14", None, "01", "01", "01"],
    "grp": [None, None, "141", "141", "142", None, None, "011", "011"],
    "is_primary_producer": [False] * 5 + [True] * 4,
})

# §10 characteristics: total_available 100 from a tiny custom table
LEVELS_CSV = "level,points\nnone,0\nl10,10\nl20,20\nl22,22.5\nl45,45\nl90,90\n"
FACTORS_CSV = """factor,field,denominator_field,kind,band_min,min_inclusive,band_max,max_inclusive,match_value,level,note
f1,workers_total,,number,,,1,false,,none,
f1,workers_total,,number,1,true,2,false,,l22,
f1,workers_total,,number,2,true,3,false,,l45,
f1,workers_total,,number,3,true,4,false,,l90,
f1,workers_total,,number,4,true,,,,l20,
f2,labour_intensive,,boolean,,,,,true,l10,
"""  # noqa: E501 — the rule table's real header line


def _controls_csv(n: int, with_accommodation: bool = False) -> str:
    rows = ["control_id,topic,title,level,points,applies_when_field,applies_when_test,applies_when_value"]
    rows += [f"c{i:03d},wages,control {i},1,1,,," for i in range(n)]
    if with_accommodation:
        rows += ["bed,health_safety,separate bed,3,3,provides_accommodation,is,true"]
    return "\n".join(rows) + "\n"


@pytest.fixture(autouse=True)
def no_overrides(tmp_path, monkeypatch):
    """Scoring reads RADAR_OVERRIDES: point it at an empty folder unless a test writes one."""
    monkeypatch.setenv("RADAR_OVERRIDES", str(tmp_path / "overrides"))


def _frame(rows: list[dict], schema: dict) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema)


def make_con(tmp_path: Path, *, sites, saq=(), controls=(), ncs=(), inherent=None,
             custom_rules: bool = True, n_controls: int = 100, accommodation: bool = False,
             inherent_confidence: float = 1.0):
    con = duckdb.connect()
    if custom_rules:
        (tmp_path / "f.csv").write_text(FACTORS_CSV)
        (tmp_path / "l.csv").write_text(LEVELS_CSV)
        (tmp_path / "c.csv").write_text(_controls_csv(n_controls, accommodation))
        load_rules(con, factors_path=tmp_path / "f.csv", levels_path=tmp_path / "l.csv",
                   controls_path=tmp_path / "c.csv")
    else:
        load_rules(con)
    tables = {
        "sites": _frame([{"iso3": "CIV", "isic_code": "1410", "isic_level": "class", "isic_class": "1410", **s}
                         for s in sites],
                        {"site_id": pl.Utf8, "iso3": pl.Utf8, "isic_code": pl.Utf8, "isic_level": pl.Utf8,
                         "isic_class": pl.Utf8}),
        "site_saq": _frame(list(saq), {"site_id": pl.Utf8, "field": pl.Utf8, "value_num": pl.Float64,
                                       "value_bool": pl.Boolean, "value_text": pl.Utf8}),
        "site_controls": _frame(list(controls), {"site_id": pl.Utf8, "control_id": pl.Utf8}),
        "site_nonconformities": _frame(list(ncs), {"site_id": pl.Utf8, "nc_id": pl.Utf8, "severity": pl.Utf8,
                                                   "status": pl.Utf8, "raised_on": pl.Date, "closed_on": pl.Date}),
        "isic": ISIC,
        "inherent_risk_overall": _frame(
            inherent or [{"iso3": "CIV", "isic_class": "1410", "score": 6.0}],
            {"iso3": pl.Utf8, "isic_class": pl.Utf8, "score": pl.Float64},
        ).with_columns(pl.lit(2024).alias("edition"), pl.col("score").alias("labour_standards"),
                       pl.col("score").alias("health_safety"), pl.col("score").alias("business_ethics"),
                       pl.col("score").alias("environment"), pl.lit(False).alias("is_primary_producer"),
                       pl.lit(None, pl.Utf8).alias("missing_topics"),
                       pl.lit(inherent_confidence).alias("confidence")),
    }
    for name, frame in tables.items():
        con.register(f"_{name}", frame)
        con.execute(f"create table {name} as select * from _{name}")
        con.unregister(f"_{name}")
    # the answers are written long (one dict per answer, as num/flag below) and stored as the
    # warehouse does, one row per site: the conversion of the long table of earlier versions
    saq_table.ensure(con)
    return con


def num(site, field, value):
    return {"site_id": site, "field": field, "value_num": float(value)}


def flag(site, field, value=True):
    return {"site_id": site, "field": field, "value_bool": value}


def achieved(site, n):
    return [{"site_id": site, "control_id": f"c{i:03d}"} for i in range(n)]


def majors(site, n, severity="major", status="open"):
    return [{"site_id": site, "nc_id": f"{severity}{i}", "severity": severity, "status": status} for i in range(n)]


def one(con, site="S1") -> dict:
    df = score_sites(con, 2024, None, "test-1")
    return df.filter(pl.col("site_id") == site).row(0, named=True)


# ---------------------------------------------------------------- rule tables

def test_default_rule_tables_cover_section_6_and_7():
    factors = read_saq_factors()
    assert factors["factor"].n_unique() == 29
    assert factors["points"].null_count() == 0
    # total_available computed from the table: sum of each factor's max
    assert total_available(factors) == pytest.approx(
        factors.group_by("factor").agg(pl.col("points").max())["points"].sum())
    controls = read_controls()
    for cid in ["ppe_enforced", "written_policy", "separate_bed_per_worker", "no_double_deck_bunks",
                "payslip_key_own_language", "labour_provider_due_diligence", "workers_consulted_on_housing",
                "elected_worker_committee", "gender_equality_owner", "living_wage_paid", "iso45001_certified"]:
        assert cid in controls["control_id"].to_list()
    assert controls.height >= 36
    pts = dict(zip(controls["control_id"], controls["points"]))
    assert pts["living_wage_paid"] == 7 and pts["no_double_deck_bunks"] == 2 and pts["ppe_enforced"] == 1


# ---------------------------------------------------------------- §10 examples

@pytest.mark.parametrize("workers,labour_intensive,expected", [
    (0, False, 1.0),     # 0 points
    (2, False, 10.0),    # 45 points
    (3, False, 10.0),    # 90 points (capped)
    (1, False, 5.5),     # 22.5 points
])
def test_characteristics_examples(tmp_path, workers, labour_intensive, expected):
    con = make_con(tmp_path, sites=[{"site_id": "S1"}],
                   saq=[num("S1", "workers_total", workers), flag("S1", "labour_intensive", labour_intensive)])
    row = one(con)
    assert row["total_available"] == 100.0
    assert round(row["site_characteristics"], 9) == expected


def _combined(tmp_path, ncs):
    # inherent 6.0; raw 20 of 100 -> characteristics 1 + 9 * 20/45 = 5.0; controls 84/100 -> 4.2
    return make_con(tmp_path, sites=[{"site_id": "S1"}], saq=[num("S1", "workers_total", 4)],
                    controls=achieved("S1", 84), ncs=ncs)


def test_combined_example_reduction(tmp_path):
    row = one(_combined(tmp_path, majors("S1", 2) + majors("S1", 3, "critical", "closed")))
    assert row["site_characteristics"] == pytest.approx(5.0)
    assert row["base"] == pytest.approx(5.5)
    assert row["management_controls"] == pytest.approx(4.2)
    assert row["adjustment"] == "reduction_0.75"
    assert row["final_score"] == 4.1  # 4.125 -> 4.1
    assert row["category"] == "Medium"


def test_combined_example_open_critical_floor(tmp_path):
    row = one(_combined(tmp_path, majors("S1", 2) + majors("S1", 1, "critical")))
    assert row["open_critical"] == 1
    assert row["adjustment"] == "floor_6.0"
    assert row["final_score"] == 6.0 and row["category"] == "High"


def test_business_critical_counts_as_critical(tmp_path):
    row = one(_combined(tmp_path, majors("S1", 1, "business_critical")))
    assert row["open_critical"] == 1 and row["final_score"] == 6.0


def test_controls_395_rounds_to_40(tmp_path):
    con = make_con(tmp_path, sites=[{"site_id": "S1"}], saq=[num("S1", "workers_total", 4)],
                   controls=achieved("S1", 79))
    row = one(con)
    assert row["management_controls"] == pytest.approx(3.95)
    assert row["mc_rounded"] == 4.0
    assert row["adjustment"] == "reduction_0.75"


def test_controls_390_gives_090(tmp_path):
    con = make_con(tmp_path, sites=[{"site_id": "S1"}], saq=[num("S1", "workers_total", 4)],
                   controls=achieved("S1", 78))
    row = one(con)
    assert row["mc_rounded"] == 3.9 and row["adjustment"] == "reduction_0.90"
    assert row["final_score"] == 5.0  # 5.5 * 0.9 = 4.95 -> 5.0 (half up)


# ---------------------------------------------------------------- boundaries

@pytest.mark.parametrize("score,final,category", [(3.95, 4.0, "Medium"), (3.94, 3.9, "Low"),
                                                  (5.95, 6.0, "High"), (5.94, 5.9, "Medium")])
def test_final_rounding_half_up_and_category(tmp_path, score, final, category):
    con = make_con(tmp_path, sites=[{"site_id": "S1"}], inherent=[{"iso3": "CIV", "isic_class": "1410",
                                                                   "score": score}])
    row = one(con)
    assert row["inherent_only"] is True and row["base"] == pytest.approx(score)
    assert row["final_score"] == final and row["category"] == category


def test_six_majors_floor_no_reduction(tmp_path):
    row = one(_combined(tmp_path, majors("S1", 6)))
    assert row["open_major"] == 6 and row["adjustment"] == "floor_6.0" and row["final_score"] == 6.0


def test_five_majors_reduction_allowed(tmp_path):
    row = one(_combined(tmp_path, majors("S1", 5)))
    assert row["adjustment"] == "reduction_0.75" and row["final_score"] == 4.1


def test_critical_low_base_floored(tmp_path):
    con = make_con(tmp_path, sites=[{"site_id": "S1"}], ncs=majors("S1", 1, "critical"),
                   inherent=[{"iso3": "CIV", "isic_class": "1410", "score": 2.0}])
    row = one(con)
    assert row["base"] == 2.0 and row["adjustment"] == "floor_6.0" and row["final_score"] == 6.0


def test_critical_high_base_not_changed(tmp_path):
    con = make_con(tmp_path, sites=[{"site_id": "S1"}], ncs=majors("S1", 1, "critical"),
                   inherent=[{"iso3": "CIV", "isic_class": "1410", "score": 7.26}])
    row = one(con)
    assert row["adjustment"] == "none" and row["final_score"] == 7.3


def test_no_saq_is_inherent_only(tmp_path):
    con = make_con(tmp_path, sites=[{"site_id": "S1"}])
    row = one(con)
    assert row["inherent_only"] is True
    assert row["base"] == row["inherent"] == 6.0
    assert row["site_characteristics"] is None
    assert row["n_unanswered"] == 2


def test_accommodation_controls_excluded_when_not_applicable(tmp_path):
    con = make_con(tmp_path, sites=[{"site_id": "S1"}, {"site_id": "S2"}], n_controls=4, accommodation=True,
                   saq=[flag("S1", "provides_accommodation", False), flag("S2", "provides_accommodation", True)],
                   controls=achieved("S1", 4) + achieved("S2", 4))
    df = score_sites(con, 2024, None, "t")
    mc = dict(zip(df["site_id"], df["management_controls"]))
    assert mc["S1"] == 5.0            # 4/4: the bed control is not in the denominator
    assert mc["S2"] == pytest.approx(5 * 4 / 7)
    cp = con.sql("select * from site_control_points where control_id = 'bed' order by site_id").pl()
    assert cp["applicable"].to_list() == [False, True]
    assert cp["points_available"].to_list() == [0.0, 3.0]


def test_scope_restricts_sites(tmp_path):
    con = make_con(tmp_path, sites=[{"site_id": "S1"}, {"site_id": "S2"}])
    assert score_sites(con, 2024, ["S2"], "t")["site_id"].to_list() == ["S2"]


def test_division_site_uses_mean_of_country_classes(tmp_path):
    con = make_con(tmp_path, sites=[{"site_id": "S1", "isic_code": "14", "isic_level": "division",
                                     "isic_class": None}],
                   inherent=[{"iso3": "CIV", "isic_class": "1410", "score": 6.0},
                             {"iso3": "CIV", "isic_class": "1420", "score": 4.0},
                             {"iso3": "BGD", "isic_class": "1420", "score": 9.0}])
    row = one(con)
    assert row["inherent"] == 5.0 and row["isic_class"] is None


def test_primary_producer_flag(tmp_path):
    con = make_con(tmp_path, sites=[{"site_id": "S1", "isic_code": "0111", "isic_class": "0111"}],
                   inherent=[{"iso3": "CIV", "isic_class": "0111", "score": 5.0}])
    assert one(con)["is_primary_producer"] is True


def test_factor_rows_explain_score(tmp_path):
    con = _combined(tmp_path, majors("S1", 2))
    rows = factor_rows(con, 2024, ["S1"], "t")
    assert set(rows["kind"]) == {"saq_factor", "control", "adjustment", "inherent_topic", "confidence"}
    assert set(rows["methodology_version"]) == {"t"}
    adj = rows.filter(pl.col("kind") == "adjustment").row(0, named=True)
    assert adj["item"] == "reduction_0.75" and adj["points"] == 4.1
    assert rows.filter(pl.col("kind") == "saq_factor")["points"].sum() == 20.0
    assert rows.filter(pl.col("kind") == "control")["points"].sum() == 84.0


# ---------------------------------------------------------------- default bands

def _level(tmp_path, answers: list[dict], factor: str) -> str | None:
    con = make_con(tmp_path, sites=[{"site_id": "S1"}], saq=answers, custom_rules=False)
    score_sites(con, 2024, None, "t")
    return con.sql("select level from site_factor_points where site_id = 'S1' and factor = $f",
                   params={"f": factor}).fetchall()[0][0]


@pytest.mark.parametrize("field,factor,value,level", [
    ("workers_total", "workers_on_site", 49, "none"), ("workers_total", "workers_on_site", 50, "minor"),
    ("workers_total", "workers_on_site", 249, "minor"), ("workers_total", "workers_on_site", 250, "moderate"),
    ("workers_total", "workers_on_site", 999, "moderate"), ("workers_total", "workers_on_site", 1000, "high"),
    ("permanent_pct", "permanent_workers_pct", 95, "none"), ("permanent_pct", "permanent_workers_pct", 94.9, "minor"),
    ("permanent_pct", "permanent_workers_pct", 80, "minor"),
    ("permanent_pct", "permanent_workers_pct", 79.9, "moderate"),
    ("permanent_pct", "permanent_workers_pct", 50, "moderate"),
    ("permanent_pct", "permanent_workers_pct", 49.9, "high"),
    ("migrant_pct", "migrant_workers_pct", 0, "none"), ("migrant_pct", "migrant_workers_pct", 0.1, "minor"),
    ("migrant_pct", "migrant_workers_pct", 10, "minor"), ("migrant_pct", "migrant_workers_pct", 10.1, "moderate"),
    ("migrant_pct", "migrant_workers_pct", 30, "moderate"), ("migrant_pct", "migrant_workers_pct", 30.1, "high"),
    ("apprentice_pct", "apprentices_pct", 5, "none"), ("apprentice_pct", "apprentices_pct", 15, "minor"),
    ("apprentice_pct", "apprentices_pct", 15.5, "moderate"),
    ("pay_in_kind_pct", "pay_in_kind_pct", 0, "none"), ("pay_in_kind_pct", "pay_in_kind_pct", 30, "minor"),
    ("pay_in_kind_pct", "pay_in_kind_pct", 31, "moderate"),
    ("young_workers_pct", "young_workers_pct", 15, "none"), ("young_workers_pct", "young_workers_pct", 30, "minor"),
    ("young_workers_pct", "young_workers_pct", 30.5, "moderate"),
])
def test_numeric_band_edges(tmp_path, field, factor, value, level):
    assert _level(tmp_path, [num("S1", field, value)], factor) == level


@pytest.mark.parametrize("workers,managers,level", [
    (45, 30, "none"), (45, 29, "minor"), (45, 15, "minor"), (46, 15, "moderate"),
    (30, 0, "moderate"), (29, 0, "none"), (70, 20, "moderate"),
])
def test_women_ratio(tmp_path, workers, managers, level):
    answers = [num("S1", "women_workers_pct", workers), num("S1", "women_managers_pct", managers)]
    assert _level(tmp_path, answers, "women_managers_ratio") == level


def test_women_ratio_needs_both_answers(tmp_path):
    assert _level(tmp_path, [num("S1", "women_workers_pct", 70)], "women_supervisors_ratio") is None


@pytest.mark.parametrize("field,factor,value,level", [
    ("prison_labour", "prison_labour", True, "critical"), ("prison_labour", "prison_labour", False, "none"),
    ("social_legal_form", "not_social_legal_form", False, "minor"),
    ("social_legal_form", "not_social_legal_form", True, "none"),
    ("total_hours_over_60", "total_hours_over_60", True, "critical"),
])
def test_boolean_factors(tmp_path, field, factor, value, level):
    assert _level(tmp_path, [flag("S1", field, value)], factor) == level


@pytest.mark.parametrize("value,level", [("union", "none"), ("committee", "minor"), ("none", "moderate")])
def test_worker_representation(tmp_path, value, level):
    answers = [{"site_id": "S1", "field": "worker_representation", "value_text": value}]
    assert _level(tmp_path, answers, "worker_representation") == level


def test_hostile_values_are_data_not_sql(tmp_path):
    evil = "x'; drop table sites; --"
    con = make_con(tmp_path, sites=[{"site_id": evil}, {"site_id": "S1"}],
                   saq=[{"site_id": evil, "field": "worker_representation", "value_text": "'); drop table isic;--"}])
    df = score_sites(con, 2024, [evil], "t")
    assert df["site_id"].to_list() == [evil]
    assert con.sql("select count(*) from sites").fetchall()[0][0] == 2
    assert con.sql("select count(*) from isic").fetchall()[0][0] == ISIC.height
