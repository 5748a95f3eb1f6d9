"""One home per rule (issue 14): topics, score categories and rounding are read from
rules/topics.csv, rules/score_categories.csv and the macros of sql/sites/score_rules.sql
by every consumer; an edited rule file changes them everywhere."""
from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from radar_pipeline.platform import settings
from radar_pipeline.rules import fingerprint, methodology, rule_sql


def test_topics_file_is_the_methodology_vocabulary() -> None:
    rows = methodology.read_topics()
    assert [r["topic"] for r in rows] == list(methodology.TOPICS)
    assert len(methodology.TOPICS) == 14 and list(methodology.PILLARS) == [
        "labour_standards", "health_safety", "business_ethics", "environment"]
    assert methodology.PILLARS["environment"] == ("energy_emissions", "biodiversity", "waste_pollution", "water")
    assert all(methodology.TOPIC_PILLAR[t] == p for p, ts in methodology.PILLARS.items() for t in ts)


def _copy_rules(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(settings.RULES_DIR, rules)
    return rules


def test_topics_file_errors_name_the_problem(tmp_path: Path) -> None:
    rules = _copy_rules(tmp_path)
    path = rules / "topics.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    # move 'water' (environment) between two labour topics: the pillar is no longer contiguous
    water = lines.pop()
    path.write_text("\n".join(lines[:2] + [water.replace(",14,", ",0,")] + lines[2:]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"pillar\(s\) \[.environment.\] are not contiguous"):
        methodology.read_topics(path)
    path.write_text("\n".join(lines + [lines[1]]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="duplicate topic: wages"):
        methodology.read_topics(path)


def test_score_categories_must_be_contiguous(tmp_path: Path) -> None:
    path = _copy_rules(tmp_path) / "score_categories.csv"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("Medium,4.0,6.0", "Medium,4.5,6.0"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 3: min_score 4.5 must equal the previous max_score 4.0"):
        methodology.read_score_categories(path)


def _con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    rule_sql.install(con)
    return con


def test_sql_macros_apply_the_rule_tables() -> None:
    con = _con()
    got = con.sql("select x, round_score(x), score_category(round_score(x)) from (values "
                  "(3.9499999999999997), (3.94), (5.95), (6.0), (0.0), (10.0), (null)) as t(x)").fetchall()
    assert [(r[1], r[2]) for r in got] == [(4.0, "Medium"), (3.9, "Low"), (6.0, "High"), (6.0, "High"),
                                           (0.0, "Low"), (10.0, "High"), (None, None)]
    assert con.sql("select list(topic order by topic_order) from topics").fetchall()[0][0] == list(methodology.TOPICS)


def test_edited_thresholds_change_the_sql_category(tmp_path: Path, monkeypatch) -> None:
    """A methodology owner moves the Medium/High edge to 7.0 in the rule file only."""
    rules = _copy_rules(tmp_path)
    path = rules / "score_categories.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("Medium,4.0,6.0", "Medium,4.0,7.0")
                    .replace("High,6.0,", "High,7.0,"), encoding="utf-8")
    monkeypatch.setenv("RADAR_RULES_DIR", str(rules))
    con = _con()
    assert con.sql("select score_category(6.5), score_category(7.0)").fetchall()[0] == ("Medium", "High")
    assert methodology.category_text(path) == "Low (< 4), Medium (< 7), High"
    # and the methodology version of the site stage moves with it, not the country stage's
    shipped = settings.RULES_DIR
    assert fingerprint.version("site", rules_dir=rules) != fingerprint.version("site", rules_dir=shipped)
    assert fingerprint.version("country", rules_dir=rules) == fingerprint.version("country", rules_dir=shipped)


def test_rule_files_have_a_stage() -> None:
    staged = {name for s in fingerprint.STAGES.values() for name in s.rules}
    assert {"topics.csv", "score_categories.csv"} <= staged
    assert "topics.csv" in fingerprint.STAGES["country"].rules


def test_rule_files_are_parsed_once_per_content(tmp_path: Path, monkeypatch) -> None:
    """rule_sql.install runs on every scoring/publish connection: an unchanged rule file is not
    parsed again, an edited one is (even a same-size edit right after the last read)."""
    rules = _copy_rules(tmp_path)
    monkeypatch.setenv("RADAR_RULES_DIR", str(rules))
    parsed = []
    real = methodology.read_score_categories
    monkeypatch.setattr(rule_sql, "read_score_categories", lambda p: parsed.append(p) or real(p))
    _con(), _con()
    assert parsed == [rules / "score_categories.csv"]
    path = rules / "score_categories.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("Medium,4.0,6.0", "Medium,4.0,7.0")
                    .replace("High,6.0,", "High,7.0,"), encoding="utf-8")
    con = _con()
    assert len(parsed) == 2
    assert con.sql("select score_category(6.5)").fetchall()[0][0] == "Medium"


def test_country_names_are_mapped_alike_one_by_one_and_together(monkeypatch):
    """names_to_iso3 asks country_converter once per distinct name in a process (a refresh resolves
    the same names in ~20 files); a name's answer does not depend on the names asked with it."""
    from radar_pipeline.sources.reference import countries

    names = ["Côte d'Ivoire", "Korea, Rep.", "Congo, Dem. Rep.", "Türkiye", "Nowhere Land", "Viet Nam",
             "Bolivia (Plurinational State of)", "Micronesia, Fed. Sts.", "EUR", "Lao PDR"]
    monkeypatch.setattr(countries, "_NAMES", {})
    together = countries.names_to_iso3(names)
    one_by_one = {}
    for n in names:
        monkeypatch.setattr(countries, "_NAMES", {})
        one_by_one.update(countries.names_to_iso3([n]))
    assert together == one_by_one
    assert together["Côte d'Ivoire"] == "CIV" and together["Nowhere Land"] is None and together["EUR"] is None
    monkeypatch.setattr(countries, "_NAMES", {})
    countries.names_to_iso3(names)
    asked: list[list[str]] = []
    real = countries.converter()

    class Spy:
        def convert(self, names, **kw):
            asked.append(list(names))
            return real.convert(names=names, **kw)
    monkeypatch.setattr(countries, "converter", lambda: Spy())
    assert countries.names_to_iso3(names + ["Peru"]) == {**together, "Peru": "PER"}
    assert asked == [["Peru"]]
