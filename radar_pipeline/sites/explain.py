"""`radar explain`: one site's score as readable text, from the warehouse's stored rows."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import duckdb
import polars as pl


def fmt(v, nd: int = 2) -> str:
    """A stored number rounded half up to `nd` decimals, as every stored score is (4.125 -> 4.13;
    a float's format() would print 4.12, the binary value lying just below); '-' for null."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return str(Decimal(repr(v)).quantize(Decimal(1).scaleb(-nd), rounding=ROUND_HALF_UP))
    return str(v)


def explain_text(con: duckdb.DuckDBPyConnection, site_id: str, edition: int | None) -> str:
    if edition is None:
        row = con.sql("select max(edition) from site_scores where site_id = $s", params={"s": site_id}).fetchall()
        edition = row[0][0]
        if edition is None:
            raise SystemExit(f"site {site_id!r} has no score in the warehouse")
    s = con.sql("select * from site_scores where site_id = $s and edition = $e",
                params={"s": site_id, "e": edition}).pl()
    if s.is_empty():
        raise SystemExit(f"site {site_id!r} has no score for edition {edition}")
    s = s.row(0, named=True)
    f = con.sql("select kind, item, detail, points from site_score_factors where site_id = $s and edition = $e "
                "order by kind, points desc nulls last, item", params={"s": site_id, "e": edition}).pl()
    topics = con.sql("""select topic, country_score, sector_weight, hrg_uplift, score from inherent_risk
                        where edition = $e and iso3 = $c and isic_class = $k order by topic""",
                     params={"e": edition, "c": s["iso3"], "k": s["isic_class"] or ""}).pl()
    filled = country_fill_lines(con, edition, s["iso3"])

    lines = [f"Site {site_id}  ({s['iso3']}, ISIC {s['isic_code']})  edition {edition}  "
             f"methodology {s['methodology_version']}",
             f"FINAL SCORE {fmt(s['final_score'], 1)}  -> {s['category']}"
             f"{'  [primary producer]' if s['is_primary_producer'] else ''}",
             *([f"OVERRIDE: category {s['category_calculated']} -> {s['category']} by {s['override_author']}: "
                f"{s['override_reason']}"] if s.get("override_reason") else []),
             f"Confidence {fmt(s.get('confidence'))} ({s.get('confidence_label') or 'unknown'}) = 0.5 x inherent "
             f"confidence {fmt(s.get('inherent_confidence'))} + 0.5 x SAQ completeness "
             f"{fmt(s.get('saq_completeness'))}; it qualifies the score, never changes it",
             *uncertainty_lines(con, site_id, edition),
             "",
             f"Inherent risk {fmt(s['inherent'])} (labour {fmt(s['labour_standards'])}, H&S "
             f"{fmt(s['health_safety'])}, ethics {fmt(s['business_ethics'])}, environment {fmt(s['environment'])})"
             + (f"; topics missing this edition: {s['missing_topics']}" if s['missing_topics'] else "")]
    intervals = topic_intervals(con, edition, s["iso3"])
    if topics.height:
        lines.append("  topic                    country + sector + HRG = topic score (cap 10)"
                     + ("   country 90 % interval (source)" if intervals else ""))
        for t in topics.iter_rows(named=True):
            lines.append(f"  {t['topic']:<24} {fmt(t['country_score']):>5} + {fmt(t['sector_weight'], 0)} + "
                         f"{fmt(t['hrg_uplift'], 0)} = {fmt(t['score'])}" + intervals.get(t["topic"], ""))
    if filled:
        lines.append(f"How the country values of {s['iso3']} were obtained (METHODOLOGY §2.3; confidence 1 observed, "
                     "0.5 income peers, 0.25 geography, 0 world mean)")
        lines += filled
    if s["inherent_only"]:
        lines.append("Site characteristics: no self-assessment -> base = inherent (inherent_only)")
    else:
        lines.append(f"Site characteristics {fmt(s['site_characteristics'])} = 1 + 9 * min(1, "
                     f"{fmt(s['raw_points'], 1)} / (0.45 * {fmt(s['total_available'], 0)}));"
                     f" {s['n_unanswered']} question(s) unanswered")
        for r in f.filter((pl.col("kind") == "saq_factor") & (pl.col("points") > 0)).iter_rows(named=True):
            lines.append(f"  +{r['points']:g}  {r['item']}: {r['detail'] or ''}")
    lines.append(f"Management controls {fmt(s['management_controls'])} (rounded {fmt(s['mc_rounded'], 1)})")
    for r in f.filter((pl.col("kind") == "control") & (pl.col("points") > 0)).iter_rows(named=True):
        lines.append(f"  {r['points']:g} pt  {r['item']}")
    lines += [f"Open audit findings: {s['open_critical']} critical/business-critical, {s['open_major']} major",
              f"Base {fmt(s['base'])} -> adjustment {s['adjustment']} -> {fmt(s['final_score'], 1)} "
              f"({s.get('category_calculated') or s['category']})"]
    lines += remediation_lines(con, site_id, edition)
    return "\n".join(lines)


def uncertainty_lines(con: duckdb.DuckDBPyConnection, site_id: str, edition: int) -> list[str]:
    """How sure the category is (table site_uncertainty, issue 25 item 2)."""
    try:
        rows = con.sql("select * from site_uncertainty where site_id = $s and edition = $e",
                       params={"s": site_id, "e": edition}).pl()
    except duckdb.CatalogException:  # a warehouse scored before the table existed
        return []
    if rows.is_empty():
        return []
    u = rows.row(0, named=True)
    if not u["n_draws"]:
        return ["How sure: no simulation for this edition (refresh it to draw one)"]
    pct = lambda v: f"{100 * v:.0f} %"  # noqa: E731
    return [f"How sure: {u['category_calculated']} in {pct(u['category_stability'])} of {u['n_draws']} draws "
            f"(seed {u['seed']}; P(Low) {pct(u['p_low'])}, P(Medium) {pct(u['p_medium'])}, "
            f"P(High) {pct(u['p_high'])}); inherent risk 90 % interval {fmt(u['inherent_low'])}-"
            f"{fmt(u['inherent_high'])} from the publishers' standard errors and the imputation donors' spread"
            + ("; the category shown is an override: the shares are the calculated category's"
               if u["overridden"] else "") + "; beside the score, never in it"]


def topic_intervals(con: duckdb.DuckDBPyConnection, edition: int, iso3: str) -> dict[str, str]:
    """topic -> '   low-high (source)' of the country's topic scores (country_topic_uncertainty)."""
    try:
        rows = con.sql("select topic, low, high, source from country_topic_uncertainty where edition = $e "
                       "and iso3 = $c", params={"e": edition, "c": iso3}).fetchall()
    except duckdb.CatalogException:
        return {}
    return {t: f"   {fmt(lo)}-{fmt(hi)} ({src})" for t, lo, hi, src in rows}


def remediation_lines(con: duckdb.DuckDBPyConnection, site_id: str, edition: int) -> list[str]:
    """The fewest actions that lower the calculated category (table site_remediation)."""
    try:
        rows = con.sql("select step, action, item, detail, score_after, category_after from site_remediation "
                       "where site_id = $s and edition = $e order by step",
                       params={"s": site_id, "e": edition}).fetchall()
    except duckdb.CatalogException:  # a warehouse scored before the table existed
        return []
    if not rows:
        return []
    if rows[0][1] == "none":
        return [f"What would lower it: nothing within reach — {rows[0][3]}"]
    out = [f"What would lower it: {len(rows)} action(s), the fewest that move it down a category"]
    for step, action, item, detail, after, category in rows:
        verb = "close finding" if action == "close_finding" else "add control"
        out.append(f"  {step}. {verb} {item}: {detail} -> {fmt(after, 1)} ({category})")
    return out


def country_fill_lines(con: duckdb.DuckDBPyConnection, edition: int, iso3: str) -> list[str]:
    """One line per indicator of the site's country: observed (year, value) or the gap fill used
    and its donor countries, with the normalised score."""
    rows = con.sql("""
        select r.topic, s.indicator_id, s.method, s.value, s.data_year, s.score, s.imputed_from, t.confidence
        from indicator_scores s
        join indicator_registry r using (indicator_id)
        left join country_topic_risk t on t.edition = s.edition and t.iso3 = s.iso3 and t.topic = r.topic
        where s.edition = $e and s.iso3 = $c
        order by r.topic, s.indicator_id""", params={"e": edition, "c": iso3}).pl()
    out = []
    for r in rows.iter_rows(named=True):
        how = (f"observed {r['data_year']} = {r['value']:g}" if r["method"] == "direct"
               else f"{r['method']} of {r['imputed_from']}")
        out.append(f"  {r['topic']:<24} {r['indicator_id']:<30} {fmt(r['score']):>5}  {how}")
    return out
