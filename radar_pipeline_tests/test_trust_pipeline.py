"""Issue 9 through the real pipeline (sample mirror, Dagster): every output row carries the
methodology version of its stage, a sector-weight edit re-versions everything downstream of
the country stage, and an override reaches the warehouse and the published snapshot."""
from __future__ import annotations

import json
import shutil

import duckdb
import pytest

from radar_pipeline.cli.runs import refresh_edition, score_sites
from radar_pipeline.platform import settings
from radar_pipeline.platform.warehouse import connect
from radar_pipeline.rules import fingerprint
from radar_pipeline.sites import store

pytestmark = pytest.mark.slow  # scoring, refresh and publish runs end to end: `python -m pytest -m slow`

COUNTRY_TABLES = ("indicator_scores", "country_topic_risk")
DOWNSTREAM_TABLES = ("hrg_uplift", "sector_weighted_country_risk", "inherent_risk", "inherent_risk_overall",
                     "site_scores", "site_score_factors")
SITES = [
    {"site_id": "T-UNION", "country": "BGD", "isic": "1410",
     "saq": {"workers_total": 400, "worker_representation": "union", "piece_rate": True},
     "controls": ["ppe_enforced", "elected_worker_committee"]},
    {"site_id": "T-NOSAQ", "country": "CIV", "isic": "0127"},
]


@pytest.fixture(scope="module")
def refreshed(sample_edition_2024):
    return sample_edition_2024


@pytest.fixture
def warehouse(refreshed, tmp_path, monkeypatch):
    path = tmp_path / "w.duckdb"
    path.write_bytes(refreshed.read_bytes())
    monkeypatch.setenv("RADAR_OVERRIDES", str(tmp_path / "overrides"))
    sites = tmp_path / "sites.jsonl"
    sites.write_text("".join(json.dumps(s) + "\n" for s in SITES))
    con = connect(path)
    store.ingest(con, sites)
    con.close()
    outcome = score_sites([s["site_id"] for s in SITES], edition=2024, warehouse=path)
    assert outcome.success, outcome.failures
    return path


def versions(path) -> dict[str, set[str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: {r[0] for r in con.sql(f"select distinct methodology_version from {t} where edition = 2024")
                    .fetchall()} for t in (*COUNTRY_TABLES, *DOWNSTREAM_TABLES)}
    finally:
        con.close()


def test_every_output_row_carries_its_stage_version(warehouse):
    got = versions(warehouse)
    expected = fingerprint.versions()
    for t in COUNTRY_TABLES:
        assert got[t] == {expected["country"]}, t
    for t in ("hrg_uplift", "sector_weighted_country_risk", "inherent_risk", "inherent_risk_overall"):
        assert got[t] == {expected["inherent"]}, t
    assert got["site_scores"] == got["site_score_factors"] == {expected["site"]}
    # the Dagster code versions are the same strings, so the UI shows stale assets after an edit
    from radar_pipeline.definitions import defs

    code = {spec.key.to_user_string(): spec.code_version for spec in defs.resolve_all_asset_specs()}
    assert code["country_topic_risk"] == expected["country"]
    assert code["inherent_risk_overall"] == code["hrg_uplift"] == expected["inherent"]
    assert code["site_scores"] == expected["site"]


def test_sector_weight_edit_reversions_downstream_rows_not_country_rows(warehouse, tmp_path, monkeypatch):
    before = versions(warehouse)
    rules = tmp_path / "rules"
    shutil.copytree(settings.RULES_DIR, rules)
    path = rules / "sector_weights.csv"
    lines = path.read_text().splitlines(keepends=True)
    cells = lines[1].split(",")          # isic_code,level,topic,weight,... (weight is 4th)
    cells[3] = str((int(cells[3]) + 1) % 5)
    lines[1] = ",".join(cells)
    path.write_text("".join(lines))
    monkeypatch.setenv("RADAR_RULES_DIR", str(rules))
    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(settings.SAMPLE_MIRROR_DIR))
    monkeypatch.setenv("RADAR_USER_FILES", str(tmp_path / "user"))
    assert refresh_edition(2024, warehouse=warehouse).success
    assert score_sites([s["site_id"] for s in SITES], edition=2024, warehouse=warehouse).success
    after = versions(warehouse)
    for t in COUNTRY_TABLES:
        assert after[t] == before[t], t
    for t in DOWNSTREAM_TABLES:
        assert len(after[t]) == 1 and after[t] != before[t], t


def test_unionised_site_confidence_and_override_reach_warehouse_and_published(warehouse, tmp_path):
    from radar_pipeline.cli import main
    from radar_pipeline.publish.build import publish

    con = duckdb.connect(str(warehouse), read_only=True)
    row = con.sql("select * from site_scores where site_id = 'T-UNION'").pl().row(0, named=True)
    applicable = dict(con.sql("""select item, detail from site_score_factors where site_id = 'T-UNION'
                                 and kind = 'control'""").fetchall())
    nosaq = con.sql("select * from site_scores where site_id = 'T-NOSAQ'").pl().row(0, named=True)
    con.close()
    assert applicable["elected_worker_committee"] == "not applicable"      # unionised: §7
    assert applicable["piece_rate_minimum_guaranteed"].startswith("not achieved")
    assert applicable["separate_bed_per_worker"] == "not applicable"       # accommodation unanswered
    assert 0 < row["saq_completeness"] < 1 and row["confidence_label"] in ("low", "medium", "high")
    assert nosaq["saq_completeness"] == 0 and nosaq["confidence"] == pytest.approx(0.5 * nosaq["inherent_confidence"])

    calculated = row["category"]
    target = "Low" if calculated != "Low" else "High"
    assert main(["override", "T-UNION", "--category", target, "--reason", "verified remediation",
                 "--author", "qa", "--warehouse", str(warehouse), "--no-publish"]) == 0
    # rejected: no reason; unknown site — nothing appended
    assert main(["override", "T-UNION", "--category", "High", "--reason", "", "--author", "qa",
                 "--warehouse", str(warehouse), "--no-rescore"]) == 2
    assert main(["override", "NOPE", "--category", "High", "--reason", "x", "--author", "qa",
                 "--warehouse", str(warehouse), "--no-rescore"]) == 2

    con = duckdb.connect(str(warehouse), read_only=True)
    row = con.sql("select * from site_scores where site_id = 'T-UNION'").pl().row(0, named=True)
    con.close()
    assert (row["category_calculated"], row["category"], row["override_author"]) == (calculated, target, "qa")
    from radar_pipeline.sites.explain import explain_text, fmt

    con = connect(warehouse, read_only=True)
    text = explain_text(con, "T-UNION", None)
    con.close()
    assert f"OVERRIDE: category {calculated} -> {target} by qa: verified remediation" in text
    assert f"Confidence {fmt(row['confidence'])} ({row['confidence_label']})" in text

    published = tmp_path / "published" / "radar.duckdb"
    publish(warehouse, published, log=lambda *_: None)
    pub = duckdb.connect(str(published), read_only=True)
    latest = pub.sql("""select category_calculated, category, override_reason, confidence_label,
                               methodology_version from site_scores_latest where site_id = 'T-UNION'""").fetchall()
    versions_published = {r[0] for r in pub.sql(
        "select distinct methodology_version from inherent_risk_overall").fetchall()}
    pub.close()
    assert latest == [(calculated, target, "verified remediation", row["confidence_label"],
                       fingerprint.version("site"))]
    assert versions_published == {fingerprint.version("inherent")}


def test_radar_score_output_adds_confidence_category_calculated_and_version(warehouse, tmp_path, monkeypatch):
    """`radar score` (the streamed CLI path) keeps its columns and adds the issue-9 ones, and
    applies the overrides in RADAR_OVERRIDES like the Dagster path."""
    from radar_pipeline.sites.overrides import append_override
    from radar_pipeline.sites.score_file import score_file

    sites = tmp_path / "score_me.jsonl"
    sites.write_text("".join(json.dumps(s) + "\n" for s in SITES))
    before, _ = score_file(sites, 2024, warehouse)
    for col in ("site_id", "final_score", "category", "inherent", "management_controls", "adjustment",
                "confidence", "confidence_label", "category_calculated", "methodology_version"):
        assert col in before.columns, col
    assert set(before["methodology_version"]) == {fingerprint.version("site")}
    assert before["category"].to_list() == before["category_calculated"].to_list()

    calculated = before.filter(before["site_id"] == "T-NOSAQ")["category"].item()
    target = "Low" if calculated != "Low" else "High"
    monkeypatch.setenv("RADAR_OVERRIDES", str(tmp_path / "cli-overrides"))
    append_override("T-NOSAQ", target, "desk review", "qa")
    after, _ = score_file(sites, 2024, warehouse)
    row = after.filter(after["site_id"] == "T-NOSAQ").row(0, named=True)
    assert (row["category_calculated"], row["category"], row["override_reason"]) == (calculated, target,
                                                                                     "desk review")
    assert after["final_score"].to_list() == before["final_score"].to_list()
