"""A hand-written polars implementation of METHODOLOGY §6–§8 (and §8a, §8b, §9): the peer the
site scoring engine (radar_pipeline.sites.scoring, sql/sites/*.sql) is measured against
(bench/bench_site_scoring.py) and checked against (radar_pipeline_tests/test_peer_polars.py:
identical results). Independent of the engine's SQL: it reads the warehouse tables and the rule
CSVs (saq_factors + saq_levels, controls, score_categories) and nothing the engine renders.

    score(con, edition, methodology_version) -> one row per site, the engine's 33 columns, by site_id
"""
from __future__ import annotations

import duckdb
import polars as pl

from radar_pipeline.rules.methodology import read_score_categories
from radar_pipeline.sites.overrides import read_overrides
from radar_pipeline.sites.scoring import read_controls, read_saq_factors

NUMERIC = (pl.Float64, pl.Float32, pl.Int64, pl.Int32, pl.Int16, pl.Int8)


def _in(x: pl.Expr, r: dict) -> pl.Expr:
    """x within the band's bounds (each inclusive or not, an empty bound open)."""
    ok = pl.lit(True)
    if r["band_min"] is not None:
        ok = ok & ((x >= r["band_min"]) if r["min_inclusive"] else (x > r["band_min"]))
    if r["band_max"] is not None:
        ok = ok & ((x <= r["band_max"]) if r["max_inclusive"] else (x < r["band_max"]))
    return ok


def _chain(tests: list[tuple[pl.Expr, float]]) -> pl.Expr:
    """The first band that matches gives its points (the riskiest first); no band: 0 points."""
    if not tests:
        return pl.lit(0.0)
    expr = pl.when(tests[0][0]).then(tests[0][1])
    for test, pts in tests[1:]:
        expr = expr.when(test).then(pts)
    return expr.otherwise(0.0)


def factor_points(factors: pl.DataFrame, schema: dict) -> list[pl.Expr]:
    """One expression per factor: its answer's points, null when unanswered (§6)."""
    out = []
    for (factor,), rows in factors.sort("points", descending=True).group_by("factor", maintain_order=True):
        r0 = rows.row(0, named=True)
        field, den = r0["field"], r0["denominator_field"]
        kinds = {k: rows.filter(pl.col("kind") == k).to_dicts() for k in rows["kind"].unique()}
        if field not in schema or (den is not None and den not in schema):
            out.append(pl.lit(None, pl.Float64).alias(factor))
            continue
        x = pl.col(field).cast(pl.Float64)
        if den is not None:  # §6 ratio: share / share, rounded to 9 decimals; a zero denominator reads x
            d = pl.col(den).cast(pl.Float64)
            ratio = (x / d).round(9)
            e = (pl.when(x.is_null() | d.is_null()).then(None)
                 .when(d > 0).then(_chain([(_in(ratio, r), r["points"]) for r in kinds.get("ratio", [])]))
                 .when(d == 0).then(_chain([(_in(x, r), r["points"]) for r in kinds.get("ratio_zero_denominator", [])]))
                 .otherwise(0.0))
        elif schema[field] == pl.Boolean:
            tests = [(pl.col(field) == (r["match_value"].lower() == "true"), r["points"])
                     for r in kinds.get("boolean", [])]
            e = pl.when(pl.col(field).is_null()).then(None).otherwise(_chain(tests))
        elif schema[field] in NUMERIC:
            tests = [(_in(x, r), r["points"]) for r in kinds.get("number", [])]
            e = pl.when(x.is_null()).then(None).otherwise(_chain(tests))
        else:
            tests = [(pl.col(field) == r["match_value"], r["points"])
                     for r in kinds.get("enum", []) if r["match_value"]]
            e = pl.when(pl.col(field).is_null()).then(None).otherwise(_chain(tests))
        out.append(e.alias(factor))
    return out


def _column(x: float) -> pl.Expr:
    """x as a full column: polars divides by a scalar as a multiplication by its reciprocal, which
    can differ from x / y in the last bit; column / column is the IEEE division."""
    return pl.int_range(pl.len()).cast(pl.Float64) * 0.0 + x


def _round1(x: pl.Expr) -> pl.Expr:
    """§8.5: one decimal, half up, after fixing the double to 9 decimals."""
    nano = (x * 1e9).round(0, mode="half_away_from_zero").cast(pl.Int64)
    return ((nano + 50_000_000) // 100_000_000).cast(pl.Float64) / _column(10.0)


def _sum_in_order(col: str) -> list[pl.Expr]:
    """Sum and count of the non-null values, summed one by one in class order (as the SQL)."""
    v = pl.col(col).sort_by("isic_class").drop_nulls()
    return [v.cum_sum().last().alias(col), v.len().cast(pl.Float64).alias(f"n_{col}")]


def score(con: duckdb.DuckDBPyConnection, edition: int, methodology_version: str) -> pl.DataFrame:
    factors, controls = read_saq_factors(), read_controls()
    cats = sorted(read_score_categories(), key=lambda r: float("-inf") if r["min_score"] is None else r["min_score"])
    sites = con.sql("select site_id, iso3, isic_code, isic_level, isic_class from sites").pl()
    saq = con.sql("select * from site_saq").pl()
    claims = con.sql("select site_id, control_id from site_controls").pl()
    ncs = con.sql("select site_id, severity from site_nonconformities where status = 'open'").pl()
    inh = con.sql("select * from inherent_risk_overall where edition = ?", params=[edition]).pl()
    isic = con.sql("select code, level, section, division, grp, is_primary_producer from isic").pl()
    overrides = read_overrides().in_force().select("site_id", pl.col("category").alias("o_cat"), "reason", "author")

    total = factors.group_by("factor").agg(pl.col("points").max())["points"].sum()
    n_factors = factors["factor"].n_unique()
    # §7: a conditional control applies where the SAQ answer passes its test; unanswered = not
    cond = controls.filter(pl.col("applies_when_field").is_not_null()).to_dicts()
    applies = []
    for c in cond:
        a = pl.col(c["applies_when_field"])
        a = a.cast(pl.Utf8).str.to_lowercase() if saq.schema[c["applies_when_field"]] == pl.Boolean else a
        test = (a == c["applies_when_value"]) if c["applies_when_test"] == "is" else (a != c["applies_when_value"])
        claimed = pl.col("site_id").is_in(claims.filter(pl.col("control_id") == c["control_id"])["site_id"].implode())
        applies.append((test.fill_null(False), claimed, c["points"]))
    pts = factor_points(factors, saq.schema)
    per_saq = saq.select(
        "site_id",
        pl.sum_horizontal(pts).alias("raw_points"),
        pl.sum_horizontal([p.is_not_null() for p in pts]).cast(pl.Int64).alias("n_answered"),
        pl.sum_horizontal([pl.when(t).then(p).otherwise(0.0) for t, _, p in applies] or [pl.lit(0.0)])
        .alias("cond_av"),
        pl.sum_horizontal([pl.when(t & k).then(p).otherwise(0.0) for t, k, p in applies] or [pl.lit(0.0)])
        .alias("cond_ach"),
    )
    always = controls.filter(pl.col("applies_when_field").is_null()).select("control_id", "points")
    achieved = claims.join(always, on="control_id").group_by("site_id").agg(pl.col("points").sum().alias("ach"))
    audit = ncs.group_by("site_id").agg(
        pl.col("severity").is_in(["business_critical", "critical"]).sum().cast(pl.Int64).alias("open_critical"),
        (pl.col("severity") == "major").sum().cast(pl.Int64).alias("open_major"))

    # inherent risk: a class site reads its class; a section/division/group site the mean over its classes
    classes = isic.filter(pl.col("level") == "class")
    codes = pl.concat([classes.select(pl.lit(lv).alias("isic_level"), pl.col(c).alias("isic_code"),
                                      pl.col("code").alias("isic_class"))
                       for lv, c in (("class", "code"), ("group", "grp"), ("division", "division"),
                                     ("section", "section"))])
    pillars = ["score", "labour_standards", "health_safety", "business_ethics", "environment", "confidence"]
    wanted = sites.select("iso3", "isic_level", "isic_code").unique()
    code_inh = (wanted.join(codes.drop_nulls(), on=["isic_level", "isic_code"])
                .join(inh, on=["iso3", "isic_class"])
                .group_by("iso3", "isic_level", "isic_code")
                .agg(*[e for c in pillars for e in _sum_in_order(c)], pl.col("missing_topics").first())
                .with_columns(pl.when(pl.col(f"n_{c}") > 0).then(pl.col(c) / pl.col(f"n_{c}")).alias(c)
                              for c in pillars))
    av_always = float(always["points"].sum())
    df = (sites.join(code_inh, on=["iso3", "isic_level", "isic_code"], how="left")
          .join(per_saq, on="site_id", how="left").join(achieved, on="site_id", how="left")
          .join(audit, on="site_id", how="left")
          .join(isic.select(pl.col("code").alias("isic_code"), "is_primary_producer"), on="isic_code", how="left")
          .join(overrides, on="site_id", how="left"))
    has_saq = pl.col("n_answered").is_not_null()
    available = av_always + pl.col("cond_av").fill_null(0.0)
    mc = pl.when(available > 0).then(5 * (pl.col("ach").fill_null(0.0) + pl.col("cond_ach").fill_null(0.0)) / available)
    df = df.with_columns(
        inherent_only=~has_saq, raw_points=pl.col("raw_points").fill_null(0.0), total_available=pl.lit(float(total)),
        n_unanswered=(n_factors - pl.col("n_answered").fill_null(0)).cast(pl.Int64),
        saq_completeness=pl.col("n_answered").fill_null(0) / _column(n_factors),
        site_characteristics=pl.when(has_saq).then(
            1 + 9 * pl.min_horizontal(pl.lit(1.0), pl.col("raw_points").fill_null(0.0) / _column(0.45 * total))),
        management_controls=mc, mc_rounded=_round1(mc),
        open_critical=pl.col("open_critical").fill_null(0), open_major=pl.col("open_major").fill_null(0),
        is_primary_producer=pl.col("is_primary_producer").fill_null(False))
    df = df.with_columns(base=pl.when(pl.col("inherent_only")).then(pl.col("score"))
                         .otherwise((pl.col("score") + pl.col("site_characteristics")) / 2))
    clean = (pl.col("open_critical") == 0) & (pl.col("open_major") < 6)
    df = df.with_columns(adjustment=pl.when(clean & (pl.col("mc_rounded") >= 4.0)).then(pl.lit("reduction_0.75"))
                         .when(clean & (pl.col("mc_rounded") >= 3.0)).then(pl.lit("reduction_0.90"))
                         .when(~clean & (pl.col("base") < 6.0)).then(pl.lit("floor_6.0")).otherwise(pl.lit("none")))
    final = _round1(pl.when(pl.col("adjustment") == "reduction_0.75").then(pl.col("base") * 0.75)
                    .when(pl.col("adjustment") == "reduction_0.90").then(pl.col("base") * 0.90)
                    .when(pl.col("adjustment") == "floor_6.0").then(6.0).otherwise(pl.col("base")))
    category = pl.lit(None, pl.Utf8)
    for r in cats:  # §8.5: min_score <= x < max_score (contiguous bands: the highest lower bound wins)
        lo = pl.lit(True) if r["min_score"] is None else pl.col("final_score") >= r["min_score"]
        category = pl.when(pl.col("final_score").is_not_null() & lo).then(pl.lit(r["category"])).otherwise(category)
    conf = 0.5 * pl.col("confidence") + 0.5 * pl.col("saq_completeness")
    df = df.with_columns(final_score=final).with_columns(category_calculated=category, site_confidence=conf)
    c = pl.col("site_confidence")
    return df.select(
        pl.lit(edition, pl.Int32).alias("edition"), "site_id", "iso3", "isic_code", "isic_class",
        pl.col("score").alias("inherent"), "labour_standards", "health_safety", "business_ethics", "environment",
        "site_characteristics", "raw_points", "total_available", "n_unanswered", "management_controls",
        "mc_rounded", "open_critical", "open_major", "base", "adjustment", "final_score", "category_calculated",
        pl.coalesce("o_cat", "category_calculated").alias("category"), pl.col("reason").alias("override_reason"),
        pl.col("author").alias("override_author"), "is_primary_producer", "inherent_only", "missing_topics",
        pl.col("confidence").alias("inherent_confidence"), "saq_completeness", c.alias("confidence"),
        pl.when(c >= 0.8).then(pl.lit("high")).when(c >= 0.5).then(pl.lit("medium"))
        .when(c.is_not_null()).then(pl.lit("low")).alias("confidence_label"),
        pl.lit(methodology_version).alias("methodology_version"),
    ).sort("site_id")
