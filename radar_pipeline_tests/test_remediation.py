"""Issue 25 item 3: what would lower a site's score — exact, checked by enumeration through the
scoring engine itself. For each case every subset of its possible actions (controls it lacks,
open findings it could close) becomes a variant site; the engine scores them all, and the
stored remediation of the case must be as short as the shortest variant that lowers the
category, and its last score must be that variant's."""
from __future__ import annotations

import itertools
import json
import shutil

import pytest

from radar_pipeline.platform.warehouse import connect
from radar_pipeline.rules import methodology
from radar_pipeline.sites import scoring, store

CONTROLS = scoring.read_controls()["control_id"].to_list()
SAQ = {"workers_total": 400, "labour_intensive": True, "worker_representation": "none", "piece_rate": True,
       "migrant_pct": 20.0, "permanent_pct": 60.0, "heavy_machinery": True, "provides_accommodation": False}
# (country, isic, saq, controls lacking (unconditional ones: they always apply), findings)
CASES = {
    "A": ("BGD", "1410", SAQ, ["living_wage_paid", "gender_equality_owner", "payslip_key_own_language",
                               "ppe_enforced"],
          [("critical", "2024-01-01"), *(("major", f"2024-02-0{i}") for i in range(1, 7))]),
    "B": ("DEU", "2410", {**SAQ, "prison_labour": True},
          ["iso45001_certified", "living_wage_paid", "union_recognition_agreement", "iso14001_certified",
           "equal_pay_audit"], [("minor", "2024-01-01")]),
    "C": ("CIV", "0127", None, ["iso45001_certified", "no_recruitment_fees", "overtime_voluntary",
                                "fire_exits_clear", "anti_bribery_policy"],
          [("business_critical", "2024-03-01"), ("major", "2024-03-02"), ("minor", "2024-03-03")]),
    "D": ("BGD", "1410", {**SAQ, "prison_labour": True, "workers_under_15": True, "regular_hours_over_48": True},
          ["ppe_enforced"], [("major", "2024-01-01")]),
}


def variants(case: str):
    country, isic, saq, lacking, findings = CASES[case]
    actions = [("control", c) for c in lacking] + [("finding", i) for i in range(len(findings))]
    for n in range(len(actions) + 1):
        for subset in itertools.combinations(range(len(actions)), n):
            mask = sum(1 << i for i in subset)
            done = {actions[i] for i in subset}
            site = {"site_id": f"REM-{case}-{mask:05d}", "country": country, "isic": isic,
                    "controls": [c for c in CONTROLS if c not in lacking or ("control", c) in done],
                    "audits": [{"nc_id": f"NC-{i}", "severity": sev, "raised_on": raised,
                                **({"status": "closed", "closed_on": "2024-06-01"} if ("finding", i) in done
                                   else {"status": "open"})}
                               for i, (sev, raised) in enumerate(findings)]}
            if saq is not None:
                site["saq"] = saq
            yield site, len(subset), done


@pytest.fixture(scope="module")
def scored(sample_edition_2024, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("remediation")
    path = tmp / "w.duckdb"
    shutil.copy(sample_edition_2024, path)
    mp = pytest.MonkeyPatch()
    mp.setenv("RADAR_OVERRIDES", str(tmp / "no-overrides"))
    lines, meta = [], {}
    for case in CASES:
        for site, size, done in variants(case):
            lines.append(json.dumps(site))
            meta[site["site_id"]] = (case, size, done)
    (tmp / "sites.jsonl").write_text("\n".join(lines) + "\n")
    con = connect(path)
    try:
        result = store.ingest(con, tmp / "sites.jsonl")
        assert not result.rejects.height if hasattr(result, "rejects") else True
        scores = store.score_and_store(con, 2024, None)
        remediation = con.sql("select * from site_remediation where edition = 2024 order by site_id, step").pl()
    finally:
        con.close()
        mp.undo()
    return scores, remediation, meta, path


RANK = {c: i for i, c in enumerate(methodology.CATEGORIES)}


@pytest.mark.parametrize("case", list(CASES))
def test_remediation_is_the_shortest_set_of_actions_that_lowers_the_category(case, scored):
    scores, remediation, meta, _path = scored
    by_site = {r["site_id"]: r for r in scores.iter_rows(named=True)}
    base = by_site[f"REM-{case}-00000"]
    assert base["final_score"] is not None
    lowering = sorted((size, by_site[s]["final_score"], s) for s, (c, size, _d) in meta.items()
                      if c == case and RANK[by_site[s]["category_calculated"]] < RANK[base["category_calculated"]])
    rows = remediation.filter(remediation["site_id"] == base["site_id"])
    if RANK[base["category_calculated"]] == 0:
        assert rows.is_empty()        # already in the lowest category: nothing to do
        return
    if not lowering:
        assert rows["action"].to_list() == ["none"], rows
        return
    shortest = lowering[0][0]
    assert rows.height == shortest, (rows, lowering[:3])
    assert rows["step"].to_list() == list(range(1, shortest + 1))
    # the set it names is a real variant, and the engine scores that variant as the table says
    named = {("control", i) for a, i in zip(rows["action"], rows["item"]) if a == "add_control"}
    named |= {("finding", int(i.split("-")[1])) for a, i in zip(rows["action"], rows["item"]) if a == "close_finding"}
    [variant] = [s for s, (c, size, done) in meta.items() if c == case and done == named]
    assert by_site[variant]["final_score"] == rows["score_after"][-1]
    assert by_site[variant]["category_calculated"] == rows["category_after"][-1]
    # among the shortest sets, none reaches a lower score than the one chosen
    assert rows["score_after"][-1] == min(score for size, score, _s in lowering if size == shortest)


def test_the_cases_cover_each_kind_of_answer(scored):
    _scores, remediation, _meta, _path = scored
    first = remediation.filter(remediation["site_id"].str.ends_with("-00000"))
    assert {"add_control", "close_finding"} <= set(first["action"]), first


def test_radar_explain_shows_what_would_lower_the_score(scored):
    import duckdb

    from radar_pipeline.sites.explain import explain_text

    _scores, remediation, _meta, path = scored
    con = duckdb.connect(str(path), read_only=True)
    try:
        for site in ("REM-A-00000", "REM-B-00000"):
            text = explain_text(con, site, 2024)
            rows = remediation.filter(remediation["site_id"] == site)
            assert f"What would lower it: {rows.height} action(s)" in text, text
            assert all(item in text for item in rows["item"]), text
    finally:
        con.close()
