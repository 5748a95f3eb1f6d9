"""Site intake (SITE_INPUT.md): every rule, one bad line never stops the others."""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from radar_pipeline.sites.intake import load_saq_fields, read_sites_jsonl

ISIC = pl.DataFrame({
    "code": ["C", "14", "141", "1410", "A", "01", "011", "0111"],
    "level": ["section", "division", "group", "class", "section", "division", "group", "class"],
    "section": ["C"] * 4 + ["A"] * 4,
    "division": [None, "14", "14", "14", None, "01", "01", "01"],
    "grp": [None, None, "141", "141", None, None, "011", "011"],
    "is_primary_producer": [False] * 4 + [True] * 4,
})
COUNTRIES = {"CIV", "BGD", "NAM"}
CONTROLS = {"ppe_enforced", "written_policy"}
GOOD = {"site_id": "ZS-1", "site_name": "Plant", "country": "BGD", "isic": "1410",
        "saq": {"workers_total": 1250, "labour_intensive": True, "migrant_pct": 12.5,
                "worker_representation": "committee"},
        "controls": ["ppe_enforced"],
        "audits": [{"nc_id": "NC-1", "severity": "major", "status": "open", "raised_on": "2024-03-02"},
                   {"nc_id": "NC-2", "severity": "critical", "status": "closed",
                    "raised_on": "2023-11-20", "closed_on": "2024-01-15"}]}


def site(**over):
    return json.dumps({**GOOD, **over}, ensure_ascii=False)


def read(tmp_path: Path, lines: list[str]):
    p = tmp_path / "sites.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return read_sites_jsonl(p, countries=COUNTRIES, isic=ISIC, controls=CONTROLS)


def reasons(result, line):
    return result.rejects.filter(pl.col("line") == line)


def test_good_site_tables(tmp_path):
    r = read(tmp_path, [site()])
    assert r.rejects.height == 0
    s = r.sites.row(0, named=True)
    assert (s["site_id"], s["iso3"], s["isic_code"], s["isic_level"], s["isic_class"], s["source_line"]) == \
        ("ZS-1", "BGD", "1410", "class", "1410", 1)
    assert len(s["content_hash"]) == 64
    # one row per site, one typed column per question of saq_fields.csv
    assert r.saq.height == 1 and r.saq.columns[0] == "site_id"
    assert r.saq.columns[1:] == load_saq_fields()["field"].to_list()
    assert r.saq.schema["workers_total"] == pl.Int64 and r.saq.schema["migrant_pct"] == pl.Float64
    saq = r.saq.row(0, named=True)
    assert saq["site_id"] == "ZS-1"
    assert saq["workers_total"] == 1250 and saq["labour_intensive"] is True
    assert saq["worker_representation"] == "committee"
    assert r.controls.to_dicts() == [{"site_id": "ZS-1", "control_id": "ppe_enforced"}]
    assert r.nonconformities["severity"].to_list() == ["major", "critical"]
    assert r.nonconformities.schema["raised_on"] == pl.Date


def test_content_hash_ignores_key_order_but_not_answers(tmp_path):
    a = read(tmp_path, [json.dumps(GOOD)]).sites["content_hash"][0]
    b = read(tmp_path, [json.dumps(dict(reversed(list(GOOD.items()))))]).sites["content_hash"][0]
    c = read(tmp_path, [site(saq={"workers_total": 10})]).sites["content_hash"][0]
    assert a == b != c


def test_malformed_line_among_good_ones(tmp_path):
    r = read(tmp_path, [site(site_id="A"), '{"site_id": "B", broken', "", site(site_id="C"), "[1]"])
    assert r.sites["site_id"].to_list() == ["A", "C"]
    assert r.rejects["line"].to_list() == [2, 5]
    assert r.rejects["reason"][0].startswith("malformed JSON")


@pytest.mark.parametrize("country", ["Côte d'Ivoire", "CI", "CIV", "civ", "Cote d'Ivoire"])
def test_country_forms(tmp_path, country):
    r = read(tmp_path, [site(country=country)])
    assert r.sites["iso3"].to_list() == ["CIV"]


def test_namibia_iso2(tmp_path):
    assert read(tmp_path, [site(country="NA")]).sites["iso3"].to_list() == ["NAM"]


@pytest.mark.parametrize("country", ["Narnia", "World", "FRA", 12])
def test_unknown_or_out_of_universe_country(tmp_path, country):
    r = read(tmp_path, [site(country=country)])
    assert r.sites.height == 0 and r.rejects["field"].to_list() == ["country"]


@pytest.mark.parametrize("code,norm,level,cls", [("C1410", "1410", "class", "1410"), ("1410", "1410", "class", "1410"),
                                                 ("14", "14", "division", None), ("c141", "141", "group", None),
                                                 ("A", "A", "section", None), ("0111", "0111", "class", "0111")])
def test_isic_forms(tmp_path, code, norm, level, cls):
    s = read(tmp_path, [site(isic=code)]).sites.row(0, named=True)
    assert (s["isic_code"], s["isic_level"], s["isic_class"]) == (norm, level, cls)


@pytest.mark.parametrize("code", ["9999", "A1410", "14100", "", "X", 1410])
def test_unknown_isic_rejected(tmp_path, code):
    r = read(tmp_path, [site(isic=code)])
    assert r.sites.height == 0 and r.rejects["field"].to_list() == ["isic"]


@pytest.mark.parametrize("site_id", ["'; drop table sites; --", "../../etc/passwd", "x" * 10_000, "", "a b",
                                     "ZS\n1", "Ünï", "x" * 65])
def test_hostile_site_ids_rejected(tmp_path, site_id):
    r = read(tmp_path, [site(site_id=site_id), site(site_id="ok")])
    assert r.sites["site_id"].to_list() == ["ok"]
    rej = reasons(r, 1).row(0, named=True)
    assert rej["field"] == "site_id"
    assert len(rej["reason"]) < 200 and len(rej["site_id"] or "") <= 130


def test_site_id_64_chars_ok(tmp_path):
    assert read(tmp_path, [site(site_id="a" * 64)]).sites.height == 1


def test_missing_or_non_string_site_id(tmp_path):
    no_id = {k: v for k, v in GOOD.items() if k != "site_id"}
    r = read(tmp_path, [json.dumps(no_id), site(site_id=7)])
    assert r.sites.height == 0
    assert r.rejects["reason"].to_list() == ["required", "site_id must be a JSON string, got number"]


def test_unicode_name_kept_inert(tmp_path):
    name = "Zürich 工厂 '); drop table sites; -- \u202e"
    r = read(tmp_path, [site(site_name=name)])
    assert r.sites["site_name"].to_list() == [name]


def test_duplicate_site_id_second_rejected(tmp_path):
    r = read(tmp_path, [site(), site(site_id="B"), site()])
    assert r.sites["site_id"].to_list() == ["ZS-1", "B"]
    rej = r.rejects.row(0, named=True)
    assert rej["line"] == 3 and rej["field"] == "site_id" and "first seen on line 1" in rej["reason"]


@pytest.mark.parametrize("saq,field,fragment", [
    ({"bogus": 1}, "saq.bogus", "unknown SAQ key"),
    ({"migrant_pct": 100.5}, "saq.migrant_pct", "out of range"),
    ({"permanent_pct": -1}, "saq.permanent_pct", "out of range"),
    ({"workers_total": "many"}, "saq.workers_total", "wrong type"),
    ({"workers_total": 12.5}, "saq.workers_total", "whole number"),
    ({"piece_rate": 1}, "saq.piece_rate", "wrong type"),
    ({"piece_rate": "yes"}, "saq.piece_rate", "wrong type"),
    ({"worker_representation": "mafia"}, "saq.worker_representation", "not an allowed value"),
])
def test_saq_rules(tmp_path, saq, field, fragment):
    r = read(tmp_path, [site(saq=saq), site(site_id="ok")])
    assert r.sites["site_id"].to_list() == ["ok"]
    rej = r.rejects.row(0, named=True)
    assert rej["field"] == field and fragment in rej["reason"] and rej["site_id"] == "ZS-1"


def test_saq_percent_edges_and_null_accepted(tmp_path):
    r = read(tmp_path, [site(saq={"migrant_pct": 0, "permanent_pct": 100, "piece_rate": None})])
    assert r.rejects.height == 0
    answered = [f for f, v in r.saq.row(0, named=True).items() if v is not None and f != "site_id"]
    assert sorted(answered) == ["migrant_pct", "permanent_pct"]


def test_saq_not_object(tmp_path):
    r = read(tmp_path, [site(saq=[1])])
    assert r.rejects["field"].to_list() == ["saq"]


def test_unknown_control_rejected(tmp_path):
    r = read(tmp_path, [site(controls=["ppe_enforced", "made_up"]), site(site_id="ok")])
    assert r.sites["site_id"].to_list() == ["ok"]
    assert r.rejects.select("field", "reason").row(0) == ("controls[1]", "unknown control id made_up")


@pytest.mark.parametrize("audit,field,fragment", [
    ({"nc_id": "a", "severity": "huge", "status": "open"}, "audits[0].severity", "severity must be"),
    ({"nc_id": "a", "severity": "major", "status": "pending"}, "audits[0].status", "status must be"),
    ({"nc_id": "a", "severity": "major"}, "audits[0]", "status is required"),
    ({"nc_id": "a", "severity": "major", "status": "open", "raised_on": "2024-13-01"}, "audits[0]", "YYYY-MM-DD"),
    ({"nc_id": "a", "severity": "major", "status": "open", "who": 1}, "audits[0].who", "unknown key"),
])
def test_audit_rules(tmp_path, audit, field, fragment):
    r = read(tmp_path, [site(audits=[audit]), site(site_id="ok")])
    assert r.sites["site_id"].to_list() == ["ok"]
    rej = r.rejects.row(0, named=True)
    assert rej["field"] == field and fragment in rej["reason"]


def test_unknown_top_level_key(tmp_path):
    r = read(tmp_path, [site(extra=1)])
    assert r.rejects.select("field", "reason").row(0) == ("extra", "unknown key extra")


def test_oversized_line_rejected_unparsed(tmp_path):
    big = site(site_name="x" * (1 << 20))
    r = read(tmp_path, [site(site_id="A"), big, site(site_id="C")])
    assert r.sites["site_id"].to_list() == ["A", "C"]
    rej = r.rejects.row(0, named=True)
    assert rej["line"] == 2 and "1 MiB" in rej["reason"] and rej["site_id"] is None


def test_nan_and_duplicate_keys_rejected(tmp_path):
    r = read(tmp_path, ['{"site_id": "A", "country": "BGD", "isic": "A", "saq": {"migrant_pct": NaN}}',
                        '{"site_id": "A", "site_id": "B", "country": "BGD", "isic": "A"}'])
    assert r.sites.height == 0 and r.rejects.height == 2


def test_rejects_name_file(tmp_path):
    r = read(tmp_path, ["nope"])
    assert r.rejects["file"][0].endswith("sites.jsonl")


@pytest.mark.parametrize("country", ["Niger Delta", "Guinea Pig", "United States of Americana",
                                     "Bangladesh Export Zone", "Ivory Coast Road"])
def test_text_that_merely_contains_a_country_name_is_rejected(tmp_path, country):
    """Issue 11: fuzzy matching mapped `Niger Delta` to Niger, `Guinea Pig` to Guinea."""
    r = read(tmp_path, [site(country=country), site(site_id="ok")])
    assert r.sites["site_id"].to_list() == ["ok"]
    rej = r.rejects.row(0, named=True)
    assert rej["field"] == "country" and country in rej["reason"]


@pytest.mark.parametrize("country,candidates", [("Congo", "COG, COD"), ("Korea", "KOR, PRK"), ("korea", "KOR, PRK")])
def test_ambiguous_country_names_are_rejected_with_the_candidates(tmp_path, country, candidates):
    r = read(tmp_path, [site(country=country)])
    assert r.sites.height == 0
    assert f"ambiguous: one of {candidates}" in r.rejects.row(0, named=True)["reason"]


@pytest.mark.parametrize("country,iso3", [("Bangladesh", "BGD"), ("People's Republic of Bangladesh", "BGD"),
                                          ("bangladesh", "BGD"), ("BD", "BGD"), ("Côte d’Ivoire", "CIV")])
def test_exact_and_official_names_and_codes_are_accepted(tmp_path, country, iso3):
    assert read(tmp_path, [site(country=country)]).sites["iso3"].to_list() == [iso3]
