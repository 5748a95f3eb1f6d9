"""Numbers a buyer can trust (issue 9, site side): control applicability (§7), confidence
(§8a), overrides (§8b) and the methodology fingerprint (§8c)."""
from __future__ import annotations

import shutil
from datetime import date, timedelta

import polars as pl
import pytest

from radar_pipeline.platform import settings
from radar_pipeline.rules import fingerprint
from radar_pipeline.sites.overrides import OverrideError, append_override, read_overrides
from radar_pipeline.sites.scoring import factor_rows, read_controls, score_sites
from radar_pipeline_tests.test_site_scoring import flag, make_con, num


@pytest.fixture(autouse=True)
def overrides_dir(tmp_path, monkeypatch):
    folder = tmp_path / "overrides"
    monkeypatch.setenv("RADAR_OVERRIDES", str(folder))
    return folder


def text(site, field, value):
    return {"site_id": site, "field": field, "value_text": value}


# ---------------------------------------------------------------- §7 applicability

def _applicable(tmp_path, answers: list[dict], control: str) -> bool:
    """Is `control` of the packaged catalogue applicable to site S1 with these SAQ answers?"""
    con = make_con(tmp_path, sites=[{"site_id": "S1"}], saq=answers, custom_rules=False)
    score_sites(con, 2024, None, "t")
    return con.sql("select applicable from site_control_points where site_id = 'S1' and control_id = $c",
                   params={"c": control}).fetchall()[0][0]


@pytest.mark.parametrize("answer,expected", [("union", False), ("committee", True), ("none", True), (None, False)])
def test_committee_control_applies_only_where_no_union(tmp_path, answer, expected):
    answers = [text("S1", "worker_representation", answer)] if answer else [num("S1", "workers_total", 10)]
    assert _applicable(tmp_path, answers, "elected_worker_committee") is expected


@pytest.mark.parametrize("field,control", [
    ("piece_rate", "piece_rate_minimum_guaranteed"),
    ("provides_accommodation", "separate_bed_per_worker"),
    ("provides_accommodation", "no_double_deck_bunks"),
    ("provides_accommodation", "workers_consulted_on_housing"),
    ("provides_accommodation", "accommodation_separate_from_production"),
    ("labour_providers", "labour_provider_due_diligence"),
])
@pytest.mark.parametrize("answer,expected", [(True, True), (False, False), (None, False)])
def test_yes_no_conditions_and_missing_answer_leaves_control_out(tmp_path, field, control, answer, expected):
    # answer None: the site answered something else, not this question -> control left out
    answers = [flag("S1", field, answer)] if answer is not None else [num("S1", "workers_total", 10)]
    assert _applicable(tmp_path, answers, control) is expected


def test_unconditional_controls_apply_to_every_site(tmp_path):
    con = make_con(tmp_path, sites=[{"site_id": "S1"}], custom_rules=False)
    score_sites(con, 2024, None, "t")
    cp = con.sql("select control_id, applicable from site_control_points").pl()
    unconditional = read_controls().filter(pl.col("applies_when_field").is_null())["control_id"]
    assert cp.filter(pl.col("control_id").is_in(unconditional.implode()))["applicable"].all()


def _unionised_worked_example(tmp_path, representation: str) -> dict:
    """Claims every unconditional control but ISO 14001, ISO 37001 and the SBTi target
    (85 - 17 = 68 of 85 points) and the committee control; no other condition answered."""
    controls = read_controls()
    unconditional = controls.filter(pl.col("applies_when_field").is_null())
    assert unconditional["points"].sum() == 85
    claimed = [c for c in unconditional["control_id"]
               if c not in ("iso14001_certified", "iso37001_certified", "science_based_target")]
    claimed.append("elected_worker_committee")
    con = make_con(tmp_path, sites=[{"site_id": "S1"}], custom_rules=False,
                   saq=[text("S1", "worker_representation", representation)],
                   controls=[{"site_id": "S1", "control_id": c} for c in claimed])
    return score_sites(con, 2024, None, "t").row(0, named=True)


def test_unionised_site_is_not_charged_the_committee_control(tmp_path):
    # union: the committee control is neither available nor earned -> 68 / 85 -> 4.0 -> x 0.75
    union = _unionised_worked_example(tmp_path, "union")
    assert union["management_controls"] == pytest.approx(5 * 68 / 85)
    assert union["mc_rounded"] == 4.0 and union["adjustment"] == "reduction_0.75"
    # the old rule (committee always counted, never earnable by a union site) gave 68 / 88
    # -> 3.86 -> x 0.90; a site without a union that lacks the committee still gets exactly that
    none = _unionised_worked_example(tmp_path, "none")
    assert none["management_controls"] == pytest.approx(5 * (68 + 3) / 88)
    assert _unionised_worked_example(tmp_path, "committee")["mc_rounded"] == 4.0
    assert union["final_score"] == pytest.approx(round(union["base"] * 0.75, 1))


def test_bad_condition_in_the_catalogue_is_named(tmp_path):
    path = tmp_path / "controls.csv"
    shutil.copy(settings.RULES_DIR / "controls.csv", path)
    path.write_text(path.read_text().replace("worker_representation,is_not,union",
                                             "worker_representation,is_not,unoin"))
    with pytest.raises(ValueError, match=r"controls.csv line \d+ \(elected_worker_committee\).*'unoin'"):
        read_controls(path)


# ---------------------------------------------------------------- §8a confidence

@pytest.mark.parametrize("inherent_conf,answers,completeness,confidence,label", [
    (1.0, 2, 1.0, 1.0, "high"),      # both factors of the 2-factor rule table answered
    (0.6, 1, 0.5, 0.55, "medium"),   # 0.5 x 0.6 + 0.5 x 0.5
    (0.6, 0, 0.0, 0.3, "low"),       # no SAQ: completeness 0
    (1.0, 1, 0.5, 0.75, "medium"),
    (0.6, 2, 1.0, 0.8, "high"),      # 0.8 exactly is high
])
def test_site_confidence(tmp_path, inherent_conf, answers, completeness, confidence, label):
    saq = [num("S1", "workers_total", 1), flag("S1", "labour_intensive", True)][:answers]
    con = make_con(tmp_path, sites=[{"site_id": "S1"}], saq=saq, inherent_confidence=inherent_conf)
    row = score_sites(con, 2024, None, "t").row(0, named=True)
    assert row["saq_completeness"] == pytest.approx(completeness)
    assert row["inherent_confidence"] == pytest.approx(inherent_conf)
    assert row["confidence"] == pytest.approx(confidence)
    assert row["confidence_label"] == label


def test_confidence_never_changes_the_score(tmp_path):
    saq = [num("S1", "workers_total", 2)]
    high = make_con(tmp_path, sites=[{"site_id": "S1"}], saq=saq, inherent_confidence=1.0)
    low = make_con(tmp_path, sites=[{"site_id": "S1"}], saq=saq, inherent_confidence=0.0)
    a, b = (score_sites(c, 2024, None, "t").row(0, named=True) for c in (high, low))
    assert a["final_score"] == b["final_score"] and a["confidence"] != b["confidence"]


# ---------------------------------------------------------------- §8b overrides

def _write_overrides(folder, rows: list[str]):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "analyst.csv").write_text("site_id,category,reason,author,created_on,expires_on\n"
                                        + "".join(r + "\n" for r in rows))


def _score(tmp_path, sites=("S1", "S2")):
    con = make_con(tmp_path, sites=[{"site_id": s} for s in sites])  # inherent 6.0 -> High
    return con, {r["site_id"]: r for r in score_sites(con, 2024, None, "t").iter_rows(named=True)}


def test_override_applies_keeps_score_and_calculated_category(tmp_path, overrides_dir):
    _write_overrides(overrides_dir, ["S1,Medium,Audit 2026-05 shows remediation done,ana,2026-06-01,"])
    con, rows = _score(tmp_path)
    s1, s2 = rows["S1"], rows["S2"]
    assert (s1["category_calculated"], s1["category"]) == ("High", "Medium")
    assert (s1["override_reason"], s1["override_author"]) == ("Audit 2026-05 shows remediation done", "ana")
    assert s1["final_score"] == s2["final_score"] == 6.0          # the score is never changed
    assert (s2["category"], s2["override_reason"]) == ("High", None)
    explained = factor_rows(con, 2024, ["S1"], "t").filter(pl.col("kind") == "override").row(0, named=True)
    assert explained["item"] == "Medium" and "High -> Medium" in explained["detail"] and "(ana)" in explained["detail"]


def test_override_expires(tmp_path, overrides_dir):
    yesterday, tomorrow = date.today() - timedelta(days=1), date.today() + timedelta(days=1)
    _write_overrides(overrides_dir, [f"S1,Low,temporary,ana,2026-01-01,{yesterday}",
                                     f"S2,Low,still valid,ana,2026-01-01,{tomorrow}"])
    _, rows = _score(tmp_path)
    assert rows["S1"]["category"] == "High" and rows["S1"]["override_reason"] is None
    assert rows["S2"]["category"] == "Low"
    # the last day in force is the expiry day itself
    assert read_overrides(overrides_dir).in_force(as_of=tomorrow)["site_id"].to_list() == ["S2"]


def test_latest_override_wins(tmp_path, overrides_dir):
    _write_overrides(overrides_dir, ["S1,Low,first view,ana,2026-01-01,", "S1,Medium,second view,bo,2026-03-01,"])
    _, rows = _score(tmp_path)
    assert (rows["S1"]["category"], rows["S1"]["override_author"]) == ("Medium", "bo")


def test_bad_overrides_rejected_with_file_line_field_and_good_ones_applied(tmp_path, overrides_dir):
    _write_overrides(overrides_dir, ["S1,Medium,,ana,2026-01-01,",                 # no reason
                                     "S2,Severe,why,ana,2026-01-01,",              # unknown category
                                     "S2,Low,why,ana,2026-13-01,",                 # bad date
                                     "S2,Low,checked on site,ana,2026-01-01,"])    # good
    con, rows = _score(tmp_path)
    assert rows["S1"]["category"] == "High" and rows["S2"]["category"] == "Low"
    rejects = con.sql("select file, line, field, reason from site_override_rejects order by line").pl()
    assert rejects.select("file", "line", "field").rows() == [
        ("analyst.csv", 2, "reason"), ("analyst.csv", 3, "category"), ("analyst.csv", 4, "created_on")]
    assert "needs a reason" in rejects["reason"][0]


def test_append_override_validates_before_writing(tmp_path, overrides_dir):
    with pytest.raises(OverrideError, match="reason: an override needs a reason"):
        append_override("S1", "High", "  ", "ana", folder=overrides_dir)
    with pytest.raises(OverrideError, match="unknown site"):
        append_override("S9", "High", "why", "ana", folder=overrides_dir, known_sites={"S1"})
    with pytest.raises(OverrideError, match="category"):
        append_override("S1", "high-ish", "why", "ana", folder=overrides_dir)
    with pytest.raises(OverrideError, match="expires_on"):
        append_override("S1", "High", "why", "ana", expires_on="31/12/2026", folder=overrides_dir)
    assert not (overrides_dir / "overrides.csv").exists()
    path = append_override("S1", "Low", 'reason with "quotes", commas', "ana", expires_on="2099-12-31",
                           folder=overrides_dir, known_sites={"S1"})
    append_override("S1", "Medium", "second", "bo", folder=overrides_dir)
    read = read_overrides(overrides_dir)
    assert read.rejects.is_empty()
    assert read.valid["reason"].to_list() == ['reason with "quotes", commas', "second"]
    assert path.read_text().count("site_id,category") == 1


# ---------------------------------------------------------------- §8c fingerprint

def test_every_rule_file_belongs_to_a_stage():
    # "sources.csv:released" is a view of a file (its release months): the file is what must exist
    listed = {n.split(":")[0] for s in fingerprint.STAGES.values() for n in s.rules} | set(fingerprint.NOT_RULES)
    present = {p.name for p in settings.RULES_DIR.iterdir() if p.suffix == ".csv"}
    assert present - listed == set(), "new rule table: add it to a stage in radar_pipeline/rules/fingerprint.py"
    assert listed - set(fingerprint.NOT_RULES) <= present


@pytest.fixture
def rules_copy(tmp_path):
    folder = tmp_path / "rules"
    shutil.copytree(settings.RULES_DIR, folder)
    return folder


def _edit_one_weight(rules) -> None:
    path = rules / "sector_weights.csv"
    lines = path.read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    i = header.index("weight")
    cells = lines[1].split(",")
    cells[i] = str((int(cells[i]) + 1) % 5)
    lines[1] = ",".join(cells)
    path.write_text("".join(lines))


def test_editing_a_sector_weight_changes_inherent_and_site_versions_not_country(rules_copy):
    before = fingerprint.versions(rules_dir=rules_copy)
    assert before == fingerprint.versions()                       # same content, same versions
    _edit_one_weight(rules_copy)
    after = fingerprint.versions(rules_dir=rules_copy)
    assert after["country"] == before["country"]
    assert after["inherent"] != before["inherent"] and after["site"] != before["site"]


@pytest.mark.parametrize("file,changed", [
    ("indicators.csv", {"country", "inherent", "site"}),
    ("controls.csv", {"site"}),
    ("saq_factors.csv", {"site"}),
    ("goods_isic.csv", {"inherent", "site"}),
])
def test_each_stage_follows_its_rule_files(rules_copy, file, changed):
    before = fingerprint.versions(rules_dir=rules_copy)
    with open(rules_copy / file, "a", encoding="utf-8") as fh:
        fh.write("\n")
    after = fingerprint.versions(rules_dir=rules_copy)
    assert {s for s in before if before[s] != after[s]} == changed


def test_line_endings_do_not_change_the_version(rules_copy):
    before = fingerprint.versions(rules_dir=rules_copy)
    path = rules_copy / "controls.csv"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert fingerprint.versions(rules_dir=rules_copy) == before


def test_versions_follow_RADAR_RULES_DIR_and_the_cli_lists_files(rules_copy, monkeypatch, capsys):
    from radar_pipeline.cli import main

    _edit_one_weight(rules_copy)
    monkeypatch.setenv("RADAR_RULES_DIR", str(rules_copy))
    assert fingerprint.version("inherent") == fingerprint.version("inherent", rules_dir=rules_copy)
    assert main(["methodology"]) == 0
    out = capsys.readouterr().out
    for stage, v in fingerprint.versions().items():
        assert f"{stage}" in out and v in out
    assert "rules/sector_weights.csv" in out and "sql/sites/site_scores.sql" in out


def test_site_explanation_picture_shows_confidence_and_override():
    from radar_pipeline.pictures import render

    site = {"site_id": "S1", "iso3": "NGA", "isic_code": "0111", "edition": 2024, "inherent": 7.0,
            "site_characteristics": 5.0, "raw_points": 20.0, "total_available": 90.0, "management_controls": 1.2,
            "mc_rounded": 1.0, "final_score": 6.5, "category": "Medium", "category_calculated": "High",
            "override_reason": "remediation verified", "override_author": "ana", "base": 6.5,
            "adjustment": "none", "open_critical": 0, "open_major": 1, "inherent_only": False,
            "confidence": 0.62, "confidence_label": "medium", "inherent_confidence": 0.8, "saq_completeness": 0.44}
    topics = pl.DataFrame({"topic": ["wages"], "country_score": [5.0], "sector_weight": [2.0],
                           "hrg_uplift": [0.0], "score": [7.0]})
    factors = pl.DataFrame({"kind": ["saq_factor"], "item": ["piece_rate"], "detail": ["true"], "points": [2.0]})
    title = render.site_explanation_figure(site, topics, factors)._suptitle.get_text()
    assert "confidence 0.62 medium" in title and "SAQ completeness 0.44" in title
    assert "OVERRIDE High -> Medium by ana: remediation verified" in title
