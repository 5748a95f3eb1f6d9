"""Site scoring (METHODOLOGY §6–§9) over DuckDB tables; the SQL lives in sql/sites/.

Tables read: sites, site_saq, site_controls, site_nonconformities (latest state),
inherent_risk_overall, isic, and the rule tables saq_factors / controls_catalogue
that `load_rules` creates from the CSVs in radar_pipeline/rules/.

`score_sites` and `factor_rows` only read: they fill the temp table score_scope,
create the per-site parts as temp views (site_factor_answers: one row per answered
site/factor; site_factor_points / site_control_points: the site x factor / site x
control grids, computed only when read) and materialise the scores as the temp table
scored_sites (not site_scores, the warehouse table the scores are published to) on
the caller's connection.
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from radar_pipeline import rule_sql
from radar_pipeline.settings import SQL_DIR, rules_dir

SITES_SQL = SQL_DIR / "sites"
LEVEL_POINTS = {1: 1, 2: 2, 3: 3, 4: 7}  # §7 control level -> points
FACTOR_KINDS = {"number", "boolean", "enum", "ratio", "ratio_zero_denominator"}


def _sql(name: str) -> str:
    return (SITES_SQL / f"{name}.sql").read_text(encoding="utf-8")


def read_saq_factors(factors_path: Path | None = None, levels_path: Path | None = None) -> pl.DataFrame:
    """saq_factors.csv joined to saq_levels.csv (level -> points), checked for typos."""
    factors = pl.read_csv(
        factors_path or rules_dir() / "saq_factors.csv",
        schema_overrides={"band_min": pl.Float64, "band_max": pl.Float64, "match_value": pl.Utf8,
                          "denominator_field": pl.Utf8, "min_inclusive": pl.Boolean,
                          "max_inclusive": pl.Boolean, "note": pl.Utf8},
    )
    levels = pl.read_csv(levels_path or rules_dir() / "saq_levels.csv",
                         schema_overrides={"points": pl.Float64})
    unknown_levels = factors.join(levels, on="level", how="anti")["level"].unique().to_list()
    if unknown_levels:
        raise ValueError(f"saq_factors: levels not in saq_levels: {unknown_levels}")
    bad_kinds = set(factors["kind"].unique().to_list()) - FACTOR_KINDS
    if bad_kinds:
        raise ValueError(f"saq_factors: unknown kind(s) {sorted(bad_kinds)}")
    # a numeric band needs its inclusivity flag wherever it has a bound
    banded = factors.filter(pl.col("kind").is_in(["number", "ratio", "ratio_zero_denominator"]))
    missing_flag = banded.filter(
        (pl.col("band_min").is_not_null() & pl.col("min_inclusive").is_null())
        | (pl.col("band_max").is_not_null() & pl.col("max_inclusive").is_null()))
    if missing_flag.height:
        raise ValueError(f"saq_factors: bound without inclusive flag in factors "
                         f"{missing_flag['factor'].unique().to_list()}")
    return factors.join(levels.select("level", "points"), on="level", how="left")


CONDITION_TESTS = ("is", "is_not")  # §7 applicability: the SAQ answer equals / differs from the value


def read_controls(path: Path | None = None, fields_path: Path | None = None) -> pl.DataFrame:
    """controls.csv, checked. A control applies to every site unless it names a condition:
    `applies_when_field` (a yes/no or choice question of saq_fields.csv), `applies_when_test`
    (is | is_not) and `applies_when_value` (true/false, or one of the question's choices).
    The condition is checked here against the SAQ definition so that a typo in the rule
    table fails loudly instead of silently switching a control off for every site."""
    path = path or rules_dir() / "controls.csv"
    controls = pl.read_csv(path, schema_overrides={"points": pl.Float64, "applies_when_field": pl.Utf8,
                                                   "applies_when_test": pl.Utf8, "applies_when_value": pl.Utf8})
    missing = {"applies_when_field", "applies_when_test", "applies_when_value"} - set(controls.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)} (control applicability, METHODOLOGY §7)")
    controls = controls.with_columns(
        pl.col(c).str.strip_chars().replace("", None)
        for c in ("applies_when_field", "applies_when_test", "applies_when_value"))
    wrong = controls.filter(pl.col("points") != pl.col("level").replace_strict(LEVEL_POINTS, default=None))
    if wrong.height:
        raise ValueError(f"controls: points do not match level for {wrong['control_id'].to_list()}")
    if controls["control_id"].is_duplicated().any():
        raise ValueError("controls: duplicate control_id")
    fields = {r["field"]: r for r in pl.read_csv(fields_path or rules_dir() / "saq_fields.csv",
                                                 infer_schema=False).iter_rows(named=True)}
    problems = []
    for line, r in enumerate(controls.iter_rows(named=True), start=2):
        field, test, value = r["applies_when_field"], r["applies_when_test"], r["applies_when_value"]
        if field is None and test is None and value is None:
            continue
        where = f"{path.name} line {line} ({r['control_id']})"
        if None in (field, test, value):
            problems.append(f"{where}: applies_when_field, applies_when_test and applies_when_value "
                            "must be given together")
        elif field not in fields or fields[field]["type"] not in ("boolean", "enum"):
            problems.append(f"{where}: applies_when_field {field!r} is not a yes/no or choice question "
                            "of saq_fields.csv")
        elif test not in CONDITION_TESTS:
            problems.append(f"{where}: applies_when_test {test!r} is not one of {list(CONDITION_TESTS)}")
        else:
            allowed = (["true", "false"] if fields[field]["type"] == "boolean"
                       else (fields[field]["allowed_values"] or "").split("|"))
            if value not in allowed:
                problems.append(f"{where}: applies_when_value {value!r} is not an answer of {field} {allowed}")
    if problems:
        raise ValueError("controls: " + "; ".join(problems))
    return controls


def total_available(factors: pl.DataFrame) -> float:
    """Sum over factors of their highest points (the §6 denominator)."""
    return float(factors.group_by("factor").agg(pl.col("points").max())["points"].sum())


def load_rules(con: duckdb.DuckDBPyConnection, *, factors_path: Path | None = None,
               levels_path: Path | None = None, controls_path: Path | None = None,
               temp: bool = False) -> None:
    """(Re)create saq_factors and controls_catalogue from the rule CSVs."""
    rule_sql.create_from_frame(con, "saq_factors", read_saq_factors(factors_path, levels_path), temp=temp)
    rule_sql.create_from_frame(con, "controls_catalogue", read_controls(controls_path), temp=temp)


def _prepare(con: duckdb.DuckDBPyConnection, edition: int, site_ids: list[str] | None,
             methodology_version: str, overrides: pl.DataFrame | None = None) -> None:
    # score_scope(site_key, site_id): the SQL joins and groups on the integer site_key
    if site_ids is None:
        # sites.site_id is the primary key: already distinct
        con.execute("create or replace temp table score_scope as "
                    "select (row_number() over ())::integer as site_key, site_id from sites")
    else:
        scope = (pl.DataFrame({"site_id": list(site_ids)}, schema={"site_id": pl.Utf8}).unique()
                 .with_row_index("site_key", offset=1).with_columns(pl.col("site_key").cast(pl.Int32)))
        rule_sql.create_from_frame(con, "score_scope", scope, temp=True)
    _load_overrides(con, overrides)
    rule_sql.install(con)  # round_score, score_category and score_categories (sql/sites/score_rules.sql)
    # The per-site parts are views: the scores read only the sparse answered factors, and the
    # site x factor / site x control grids are computed only when the explanation rows (or a
    # caller) read them. Table names are constants; values only travel as bound parameters.
    for view in ("site_factor_answers", "site_conditional_controls", "site_factor_points",
                 "site_control_points"):
        con.execute(f"create or replace temp view {view} as " + _sql(view))
    con.execute("create or replace temp table scored_sites as " + _sql("site_scores"),
                {"edition": edition, "methodology_version": methodology_version})


def _load_overrides(con: duckdb.DuckDBPyConnection, overrides: pl.DataFrame | None) -> None:
    """temp tables site_overrides_in_force (one per site, §8b), site_override_rows (every valid
    row, with file and line) and site_override_rejects. `overrides` None: read RADAR_OVERRIDES
    as of today, so every scoring path (CLI, sensor, rescoring) applies the same overrides; a
    frame (site_id, category, reason, author) is used as given."""
    from radar_pipeline.sites.overrides import OVERRIDE_SCHEMA, REJECT_SCHEMA, read_overrides

    if overrides is None:
        read = read_overrides()
        rows, in_force, rejects = read.valid, read.in_force(), read.rejects
    else:
        rows, in_force, rejects = pl.DataFrame(schema=OVERRIDE_SCHEMA), overrides, pl.DataFrame(schema=REJECT_SCHEMA)
    rule_sql.create_from_frame(con, "site_overrides_in_force",
                               in_force.select("site_id", "category", "reason", "author"), temp=True)
    rule_sql.create_from_frame(con, "site_override_rows", rows, temp=True)
    rule_sql.create_from_frame(con, "site_override_rejects", rejects, temp=True)


def score_sites(con: duckdb.DuckDBPyConnection, edition: int, site_ids: list[str] | None,
                methodology_version: str | None = None, overrides: pl.DataFrame | None = None) -> pl.DataFrame:
    """site_scores rows for the given sites (all sites when None). Writes no permanent table.
    methodology_version defaults to the fingerprint of the site stage (METHODOLOGY §8c)."""
    _prepare(con, edition, site_ids, methodology_version or site_version(), overrides)
    return con.sql("select * from scored_sites order by site_id").pl()


def site_version() -> str:
    from radar_pipeline import fingerprint

    return fingerprint.version("site")


def factor_rows(con: duckdb.DuckDBPyConnection, edition: int, site_ids: list[str] | None,
                methodology_version: str | None = None, overrides: pl.DataFrame | None = None) -> pl.DataFrame:
    """site_score_factors rows (the explanation of each score) for the given sites."""
    version = methodology_version or site_version()
    _prepare(con, edition, site_ids, version, overrides)
    return con.sql(f"select * from ({_sql('site_score_factors')}) order by site_id, kind, item",
                   params={"edition": edition, "methodology_version": version}).pl()
