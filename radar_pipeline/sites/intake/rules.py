"""The exact path's rules as pandera polars schemas (one per frame the exact path builds: site,
SAQ answer, control, audit finding, key) and the translation of a schema's failure cases into
(line, field, reason) rows — the wording of every reject."""
from __future__ import annotations

import pandera.polars as pa
import polars as pl

from radar_pipeline.platform.identifiers import ID_RULE, id_expr
from radar_pipeline.sites.intake.fields import (
    AUDIT_KEYS,
    MAX_INTEGER,
    SEVERITIES,
    SHOWN_CHARS,
    STATUSES,
    TOP_LEVEL_KEYS,
)


def _type_col(name: str, expected: str, required: bool = False) -> pa.Column:
    return pa.Column(pl.Utf8, nullable=not required, checks=pa.Check.isin(
        [expected], error=f"{name} must be a JSON {expected}, got {{value}}"))


def _frame_check(expr: pl.Expr, error: str) -> pa.Check:
    """DataFrame-level check; rows where the condition is null pass."""
    return pa.Check(lambda d: d.lazyframe.select(expr.fill_null(True)), error=error)


def _schemas(countries: set[str], isic_codes: list[str], controls: set[str],
             saq_fields: pl.DataFrame) -> dict[str, pa.DataFrameSchema]:
    sites = pa.DataFrameSchema({
        "site_id__type": _type_col("site_id", "string", required=True),
        "site_id": pa.Column(pl.Utf8, nullable=True, checks=pa.Check(
            lambda d: d.lazyframe.select(id_expr(d.key).fill_null(True)),
            error=f"site_id must be {ID_RULE}, got {{value}}")),
        "duplicate_of_line": pa.Column(pl.Int64, nullable=True, checks=pa.Check(
            lambda d: d.lazyframe.select(pl.col(d.key).is_null()),
            error="duplicate site_id in this file; first seen on line {value}")),
        "site_name__type": _type_col("site_name", "string"),
        "country__type": _type_col("country", "string", required=True),
        "iso3": pa.Column(pl.Utf8, nullable=True, checks=pa.Check.isin(
            sorted(countries),
            error="unknown country (not an ISO3/ISO2 code or name in the country universe): {value}")),
        "isic__type": _type_col("isic", "string", required=True),
        "isic_code": pa.Column(pl.Utf8, nullable=True, checks=pa.Check.isin(
            isic_codes, error="unknown ISIC Rev.4 code: {value}")),
        "saq__type": _type_col("saq", "object"),
        "controls__type": _type_col("controls", "array"),
        "audits__type": _type_col("audits", "array"),
    })
    keys = pa.DataFrameSchema(
        {"key": pa.Column(pl.Utf8)},
        checks=[_frame_check(
            pl.when(pl.col("scope") == "site").then(pl.col("key").is_in(list(TOP_LEVEL_KEYS)))
            .otherwise(pl.col("key").is_in(list(AUDIT_KEYS))),
            "unknown key {value}")],
    )
    saq = pa.DataFrameSchema(
        {"field": pa.Column(pl.Utf8, checks=pa.Check.isin(
            saq_fields["field"].to_list(), error="unknown SAQ key {value}"))},
        checks=[
            _frame_check(
                pl.when(pl.col("expected_type").is_in(["number", "integer"]))
                .then(pl.col("json_type") == "number")
                .when(pl.col("expected_type") == "enum").then(pl.col("json_type") == "string")
                .otherwise(pl.col("json_type") == pl.col("expected_type")),
                "wrong type: {value}"),
            _frame_check(  # 1e400 parses as infinity: a number no questionnaire answer can be
                pl.when(pl.col("json_type") == "number").then(pl.col("value_num").is_finite()),
                "not a finite number: {value}"),
            _frame_check(
                pl.when(pl.col("expected_type") == "integer")
                .then(pl.col("value_num") == pl.col("value_num").floor()),
                "must be a whole number: {value}"),
            _frame_check(  # stored as BIGINT
                pl.when(pl.col("expected_type") == "integer").then(pl.col("value_num").abs() < MAX_INTEGER),
                f"too large for a whole number (at most {MAX_INTEGER - 1}): {{value}}"),
            _frame_check(
                (pl.col("min").is_null() | (pl.col("value_num") >= pl.col("min")))
                & (pl.col("max").is_null() | (pl.col("value_num") <= pl.col("max"))),
                "out of range (percentages 0-100, counts >= 0): {value}"),
            _frame_check(
                pl.when(pl.col("expected_type") == "enum")
                .then(pl.col("allowed").list.contains(pl.col("value_text"))),
                "not an allowed value: {value}"),
        ],
    )
    ctl = pa.DataFrameSchema({
        "json_type": pa.Column(pl.Utf8, checks=pa.Check.isin(
            ["string"], error="control id must be a JSON string, got {value}")),
        "control_id": pa.Column(pl.Utf8, nullable=True, checks=pa.Check.isin(
            sorted(controls), error="unknown control id {value}")),
    })
    audits = pa.DataFrameSchema(
        {
            "json_type": pa.Column(pl.Utf8, checks=pa.Check.isin(
                ["object"], error="audit finding must be a JSON object, got {value}")),
            "nc_id__type": _type_col("nc_id", "string"),
            "severity__type": _type_col("severity", "string"),
            "status__type": _type_col("status", "string"),
            "raised_on__type": _type_col("raised_on", "string"),
            "closed_on__type": _type_col("closed_on", "string"),
            "severity": pa.Column(pl.Utf8, nullable=True, checks=pa.Check.isin(
                list(SEVERITIES), error="severity must be one of " + ", ".join(SEVERITIES) + "; got {value}")),
            "status": pa.Column(pl.Utf8, nullable=True, checks=pa.Check.isin(
                list(STATUSES), error="status must be open or closed; got {value}")),
        },
        checks=[
            _frame_check((pl.col("json_type") != "object") | pl.col("nc_id__type").is_not_null(),
                         "nc_id is required"),
            _frame_check((pl.col("json_type") != "object") | pl.col("severity__type").is_not_null(),
                         "severity is required"),
            _frame_check((pl.col("json_type") != "object") | pl.col("status__type").is_not_null(),
                         "status is required"),
            _frame_check(pl.col("raised_on").is_null() | pl.col("raised_on_date").is_not_null(),
                         "raised_on must be a date YYYY-MM-DD: {value}"),
            _frame_check(pl.col("closed_on").is_null() | pl.col("closed_on_date").is_not_null(),
                         "closed_on must be a date YYYY-MM-DD: {value}"),
            _frame_check(pl.col("closed_on_date") >= pl.col("raised_on_date"),
                         "closed_on is before raised_on: {value}"),
            _frame_check(pl.col("nc_first_pos").is_null(),
                         "duplicate nc_id within the site: {value}"),
        ],
    )
    return {"sites": sites, "keys": keys, "saq": saq, "controls": ctl, "audits": audits}


def _failures(frame: pl.DataFrame, schema: pa.DataFrameSchema) -> pl.DataFrame:
    """Validate lazily; return (line, field, reason) per failure case.

    Field: frames with a `_field` column (one row = one field, or one list element)
    report that, plus `.column` for per-column failures listed in `_subfields`; the
    sites frame reports the column name (type/derived suffixes mapped back to the
    input field). The value shown is the failure case for column checks and the
    row's `_shown` for frame-level checks, truncated."""
    empty = pl.DataFrame(schema={"line": pl.Int64, "field": pl.Utf8, "reason": pl.Utf8})
    if frame.height == 0:
        return empty
    indexed = frame.with_row_index("_row")
    try:
        schema.validate(indexed.drop("_row"), lazy=True)
        return empty
    except pa.errors.SchemaErrors as err:
        fc = err.failure_cases
    column_field = {"iso3": "country", "isic_code": "isic", "duplicate_of_line": "site_id",
                    "json_type": "", "field": "", "key": "", "control_id": ""}
    base = (pl.col("column").str.replace(r"__type$", "")
            .replace(column_field))
    fc = fc.filter(pl.col("index").is_not_null()).with_columns(pl.col("index").cast(pl.UInt32))
    joined = fc.join(indexed, left_on="index", right_on="_row", how="left")
    has_field = "_field" in frame.columns
    if has_field:
        field = pl.when(pl.col("column").is_null() | (base == "")).then(pl.col("_field")) \
            .otherwise(pl.col("_field") + "." + base)
    else:
        field = base
    row_shown = pl.col("_shown") if "_shown" in frame.columns else pl.lit(None, pl.Utf8)
    shown = pl.when(pl.col("schema_context") == "DataFrameSchema").then(row_shown) \
        .otherwise(pl.col("failure_case"))
    shown = pl.when(shown.str.len_chars() > SHOWN_CHARS) \
        .then(shown.str.slice(0, SHOWN_CHARS) + "…").otherwise(shown).fill_null("null")
    reason = pl.when(pl.col("check") == "not_nullable").then(pl.lit("required")) \
        .otherwise(pl.col("check").str.replace_all("{value}", shown, literal=True))
    return joined.select(pl.col("line").cast(pl.Int64), field.alias("field"), reason.alias("reason"))
