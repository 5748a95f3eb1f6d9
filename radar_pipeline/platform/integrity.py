"""Warehouse integrity rules shared by the Dagster asset checks and the crash-safety tests."""
from __future__ import annotations

import duckdb


def country_topic_risk_complete(con: duckdb.DuckDBPyConnection, edition: int) -> tuple[bool, dict]:
    """Every country of the edition's universe has every topic present in the edition; scores within 1-6."""
    expected, actual, lo, hi = con.sql("""
        select (select count(*) from edition_countries where edition = $e) * count(distinct topic),
               count(*), min(score), max(score)
        from country_topic_risk where edition = $e""", params={"e": edition}).fetchall()[0]
    passed = bool(actual) and expected == actual and lo >= 1.0 and hi <= 6.0
    # name what is lacking: the topic, its indicators and the countries (with their regions)
    lacking = con.sql("""
        with topics as (select distinct topic from country_topic_risk where edition = $e),
        grid as (select c.iso3, c.region, t.topic from edition_countries c cross join topics t
                 where c.edition = $e),
        absent as (select g.* from grid g anti join country_topic_risk r
                   on r.edition = $e and r.iso3 = g.iso3 and r.topic = g.topic)
        select a.topic,
               (select string_agg(indicator_id, ', ' order by indicator_id) from indicator_registry i
                where i.topic = a.topic) as indicators,
               string_agg(distinct a.region, ', ' order by a.region) as regions,
               string_agg(a.iso3, ', ' order by a.iso3) as countries
        from absent a group by a.topic order by a.topic""", params={"e": edition}).fetchall()
    return passed, {"edition": edition, "expected_rows": expected, "rows": actual,
                    "min_score": lo, "max_score": hi,
                    "lacking": "; ".join(f"topic {t} (indicators {i}): regions {r}: countries {c[:300]}"
                                         for t, i, r, c in lacking) or "none"}


def inherent_risk_overall_complete(con: duckdb.DuckDBPyConnection, edition: int) -> tuple[bool, dict]:
    """One row per M49 country x ISIC class; overall and per-topic scores within 1-10."""
    expected, actual, lo, hi, topic_lo, topic_hi = con.sql("""
        select (select count(*) from edition_countries where edition = $e)
                   * (select count(*) from isic where level = 'class'),
               (select count(*) from inherent_risk_overall where edition = $e),
               (select min(score) from inherent_risk_overall where edition = $e),
               (select max(score) from inherent_risk_overall where edition = $e),
               (select min(score) from inherent_risk where edition = $e),
               (select max(score) from inherent_risk where edition = $e)""", params={"e": edition}).fetchall()[0]
    passed = (bool(actual) and expected == actual and 1.0 <= lo and hi <= 10.0
              and 1.0 <= topic_lo and topic_hi <= 10.0)
    return passed, {"edition": edition, "expected_rows": expected, "rows": actual, "min_score": lo,
                    "max_score": hi, "min_topic_score": topic_lo, "max_topic_score": topic_hi}


def latest_edition(con: duckdb.DuckDBPyConnection, table: str) -> int | None:
    return con.sql(f"select max(edition) from {table}").fetchall()[0][0]
