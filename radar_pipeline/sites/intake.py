"""Intake of buyer site files (JSON Lines, see /work/shared/SITE_INPUT.md).

Flow:
1. Each physical line is read with a hard size cap (lines over 1 MiB are rejected
   without being parsed), decoded as UTF-8 and parsed with `json`. A line that
   fails here becomes a reject row and the next line is read.
2. The parsed objects are flattened into small typed frames (one per level of
   the record: site, SAQ answer, control, audit finding, key) that carry the
   JSON type of each value next to it.
3. pandera polars schemas check those frames (types, required fields, regex,
   enums, ranges, known keys, duplicates). Every failure case becomes a reject
   row naming the file, line, site id (when it is a string), field and reason.
4. A line with any failure is rejected as a whole; the others make up the
   result tables.

Values are never interpolated into SQL: the result is polars frames, which
callers hand to DuckDB as Arrow.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import pandera.polars as pa
import polars as pl

from radar_pipeline.settings import RULES_DIR

MAX_LINE_BYTES = 1 << 20  # 1 MiB
SITE_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
TOP_LEVEL_KEYS = ("site_id", "site_name", "country", "isic", "saq", "controls", "audits")
AUDIT_KEYS = ("nc_id", "severity", "status", "raised_on", "closed_on")
SEVERITIES = ("business_critical", "critical", "major", "minor", "observation")
STATUSES = ("open", "closed")
SHOWN_CHARS = 60  # rejected values are echoed in the reason, truncated
SITE_ID_SHOWN_CHARS = 128

SITES_SCHEMA = {
    "site_id": pl.Utf8, "site_name": pl.Utf8, "iso3": pl.Utf8, "isic_code": pl.Utf8,
    "isic_level": pl.Utf8, "isic_class": pl.Utf8, "source_file": pl.Utf8,
    "source_line": pl.Int64, "content_hash": pl.Utf8,
}
SAQ_SCHEMA = {"site_id": pl.Utf8, "field": pl.Utf8, "value_num": pl.Float64,
              "value_bool": pl.Boolean, "value_text": pl.Utf8}
CONTROLS_SCHEMA = {"site_id": pl.Utf8, "control_id": pl.Utf8}
NC_SCHEMA = {"site_id": pl.Utf8, "nc_id": pl.Utf8, "severity": pl.Utf8, "status": pl.Utf8,
             "raised_on": pl.Date, "closed_on": pl.Date}
REJECTS_SCHEMA = {"file": pl.Utf8, "line": pl.Int64, "site_id": pl.Utf8, "field": pl.Utf8,
                  "reason": pl.Utf8}


@dataclass(frozen=True)
class IntakeResult:
    sites: pl.DataFrame
    saq: pl.DataFrame
    controls: pl.DataFrame
    nonconformities: pl.DataFrame
    rejects: pl.DataFrame


# --------------------------------------------------------------------------- rules

def load_saq_fields(path: Path | None = None) -> pl.DataFrame:
    """The questionnaire definition: field, type (boolean|number|integer|enum), min, max, allowed_values."""
    return pl.read_csv(
        path or RULES_DIR / "saq_fields.csv",
        schema_overrides={"min": pl.Float64, "max": pl.Float64, "allowed_values": pl.Utf8},
    )


@lru_cache(maxsize=1)
def _country_converter():
    """country_converter 1.3.2 cannot build its table under pandas 3 (Namibia's ISO2 "NA"
    is read as missing, then compiled as a regex). Load the library's own data file
    with pandas' NA parsing off and hand it over as a DataFrame; the data is unchanged."""
    import country_converter as coco
    import pandas as pd

    data_file = Path(coco.__file__).with_name("country_data.tsv")
    df = pd.read_csv(data_file, sep="\t", encoding="utf-8", dtype=str, keep_default_na=False)
    for col in ("ISOnumeric", "UNcode", "FAOcode", "GBDcode", "EURO", "UN", "UNmember",
                "obsolete", "GEOnumeric"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col].replace("", None), errors="coerce").astype("Int64")
    return coco.CountryConverter(country_data=df)


_NOT_FOUND = "\x00not found"


def to_iso3(values: list[str]) -> dict[str, str | None]:
    """Map distinct country strings (ISO3, ISO2 or name) to ISO3 with country_converter."""
    cc = _country_converter()
    out: dict[str, str | None] = {}
    log = logging.getLogger("country_converter")
    level = log.level
    log.setLevel(logging.ERROR)  # "not found" is reported as a reject, not a log line
    try:
        for value in values:
            name = value.strip()
            if not name or len(name) > 100:
                out[value] = None
                continue
            res = cc.convert(name, to="ISO3", not_found=_NOT_FOUND)
            out[value] = res if isinstance(res, str) and res != _NOT_FOUND else None
    finally:
        log.setLevel(level)
    return out


# --------------------------------------------------------------------------- reading

def _iter_lines(fh: BinaryIO) -> Iterator[tuple[int, bytes | None, int]]:
    """Yield (line number, bytes or None when over the cap, size) without ever holding
    more than MAX_LINE_BYTES + 1 bytes of one line in memory."""
    lineno = 0
    while True:
        chunk = fh.readline(MAX_LINE_BYTES + 2)
        if not chunk:
            return
        lineno += 1
        if chunk.endswith(b"\n") or len(chunk) <= MAX_LINE_BYTES:
            body = chunk.rstrip(b"\r\n")
            if len(body) > MAX_LINE_BYTES:
                yield lineno, None, len(body)
            else:
                yield lineno, body, len(body)
            continue
        size = len(chunk)
        while not chunk.endswith(b"\n"):  # skip the rest of the oversized line
            chunk = fh.readline(1 << 16)
            if not chunk:
                break
            size += len(chunk)
        yield lineno, None, size


def _jtype(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key[:SHOWN_CHARS]!r}")
        seen[key] = value
    return seen


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# --------------------------------------------------------------------------- schemas

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
        "site_id": pa.Column(pl.Utf8, nullable=True, checks=pa.Check.str_matches(
            SITE_ID_PATTERN, error="site_id must be 1-64 characters of A-Z a-z 0-9 . _ -, got {value}")),
        "duplicate_of_line": pa.Column(pl.Int64, nullable=True, checks=pa.Check(
            lambda d: d.lazyframe.select(pl.col(d.key).is_null()),
            error="duplicate site_id in this file; first seen on line {value}")),
        "site_name__type": _type_col("site_name", "string"),
        "country__type": _type_col("country", "string", required=True),
        "iso3": pa.Column(pl.Utf8, nullable=True, checks=pa.Check.isin(
            sorted(countries), error="unknown country (not an ISO3/ISO2 code or name in the country universe): {value}")),
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
            _frame_check(
                pl.when(pl.col("expected_type") == "integer")
                .then(pl.col("value_num") == pl.col("value_num").floor()),
                "must be a whole number: {value}"),
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


# --------------------------------------------------------------------------- main

def read_sites_jsonl(path: Path, *, countries: set[str], isic: pl.DataFrame, controls: set[str],
                     saq_fields: pl.DataFrame | None = None) -> IntakeResult:
    """Read one JSON Lines site file; valid sites in tables, everything else in `rejects`.

    countries: the ISO3 universe; isic: (code, level, section, division, grp,
    is_primary_producer); controls: catalogue control ids; saq_fields: the questionnaire
    definition (default rules/saq_fields.csv)."""
    path = Path(path)
    saq_fields = saq_fields if saq_fields is not None else load_saq_fields()
    file_name = str(path)

    parse_rejects: list[dict] = []
    site_rows: list[dict] = []
    key_rows: list[dict] = []
    saq_rows: list[dict] = []
    ctl_rows: list[dict] = []
    audit_rows: list[dict] = []

    with open(path, "rb") as fh:
        for lineno, body, size in _iter_lines(fh):
            if body is None:
                parse_rejects.append({"line": lineno, "field": None,
                                      "reason": f"line is {size} bytes, over the 1 MiB limit; not parsed"})
                continue
            if not body.strip():
                continue  # blank lines (e.g. a trailing newline) are not records
            try:
                text = body.decode("utf-8")
                if text.startswith("\ufeff") and lineno == 1:
                    text = text[1:]
                obj = json.loads(text, parse_constant=_reject_constant,
                                 object_pairs_hook=_no_duplicate_keys)
            except UnicodeDecodeError:
                parse_rejects.append({"line": lineno, "field": None, "reason": "not valid UTF-8"})
                continue
            except (ValueError, RecursionError) as exc:
                parse_rejects.append({"line": lineno, "field": None,
                                      "reason": f"malformed JSON: {str(exc)[:200]}"})
                continue
            if not isinstance(obj, dict):
                parse_rejects.append({"line": lineno, "field": None,
                                      "reason": f"a site must be a JSON object, got {_jtype(obj)}"})
                continue
            canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            row = {"line": lineno, "content_hash": hashlib.sha256(canonical.encode("utf-8")).hexdigest()}
            for key in ("site_id", "site_name", "country", "isic", "saq", "controls", "audits"):
                row[f"{key}__type"] = _jtype(obj.get(key))
            for key in ("site_id", "site_name", "country", "isic"):
                row[key] = _str_or_none(obj.get(key))
            site_rows.append(row)
            key_rows.extend({"line": lineno, "scope": "site", "key": k, "_field": k} for k in obj)

            saq = obj.get("saq")
            if isinstance(saq, dict):
                for field, value in saq.items():
                    if value is None:
                        continue  # an explicit null is an unanswered question
                    jt = _jtype(value)
                    saq_rows.append({
                        "line": lineno, "field": field, "json_type": jt,
                        "value_num": float(value) if jt == "number" else None,
                        "value_bool": value if jt == "boolean" else None,
                        "value_text": value if jt == "string" else None,
                        "_shown": f"{jt} {json.dumps(value, ensure_ascii=False)[:SHOWN_CHARS]}",
                    })
            ctl = obj.get("controls")
            if isinstance(ctl, list):
                for pos, value in enumerate(ctl):
                    ctl_rows.append({"line": lineno, "pos": pos, "json_type": _jtype(value) or "null",
                                     "control_id": _str_or_none(value), "_field": f"controls[{pos}]"})
            audits = obj.get("audits")
            if isinstance(audits, list):
                for pos, value in enumerate(audits):
                    item = value if isinstance(value, dict) else {}
                    arow = {"line": lineno, "pos": pos, "json_type": _jtype(value) or "null",
                            "_field": f"audits[{pos}]"}
                    for key in AUDIT_KEYS:
                        arow[f"{key}__type"] = _jtype(item.get(key))
                        arow[key] = _str_or_none(item.get(key))
                    audit_rows.append(arow)
                    key_rows.extend({"line": lineno, "scope": "audit", "key": k,
                                     "_field": f"audits[{pos}].{k}"} for k in item)

    frames = _build_frames(site_rows, key_rows, saq_rows, ctl_rows, audit_rows,
                           isic=isic, saq_fields=saq_fields)
    schemas = _schemas(countries, isic["code"].to_list(), controls, saq_fields)
    failures = pl.concat(
        [pl.DataFrame(parse_rejects, schema={"line": pl.Int64, "field": pl.Utf8, "reason": pl.Utf8})]
        + [_failures(frames[name], schemas[name]) for name in ("sites", "keys", "saq", "controls", "audits")]
    )
    sites_raw = frames["sites"]
    site_id_shown = pl.when(pl.col("site_id").str.len_chars() > SITE_ID_SHOWN_CHARS) \
        .then(pl.col("site_id").str.slice(0, SITE_ID_SHOWN_CHARS) + "…").otherwise(pl.col("site_id"))
    rejects = (
        failures.unique(maintain_order=True)
        .join(sites_raw.select("line", site_id_shown.alias("site_id")), on="line", how="left")
        .select(pl.lit(file_name).alias("file"), "line", "site_id", "field", "reason")
        .sort("line", maintain_order=True)
        .cast(REJECTS_SCHEMA)
    )
    bad_lines = rejects.select("line").unique()

    good = sites_raw.join(bad_lines, on="line", how="anti")
    line_to_site = good.select("line", "site_id")
    sites = good.select(
        "site_id", "site_name", "iso3", "isic_code", "isic_level",
        pl.when(pl.col("isic_level") == "class").then(pl.col("isic_code")).alias("isic_class"),
        pl.lit(file_name).alias("source_file"), pl.col("line").alias("source_line"), "content_hash",
    ).cast(SITES_SCHEMA)
    saq_out = (frames["saq"].join(line_to_site, on="line", how="inner")
               .select(list(SAQ_SCHEMA)).cast(SAQ_SCHEMA))
    ctl_out = (frames["controls"].join(line_to_site, on="line", how="inner")
               .select("site_id", "control_id").unique(maintain_order=True).cast(CONTROLS_SCHEMA))
    nc_out = (frames["audits"].join(line_to_site, on="line", how="inner")
              .select("site_id", "nc_id", "severity", "status",
                      pl.col("raised_on_date").alias("raised_on"), pl.col("closed_on_date").alias("closed_on"))
              .cast(NC_SCHEMA))
    return IntakeResult(sites=sites, saq=saq_out, controls=ctl_out, nonconformities=nc_out,
                        rejects=rejects)


def _build_frames(site_rows, key_rows, saq_rows, ctl_rows, audit_rows, *, isic: pl.DataFrame,
                  saq_fields: pl.DataFrame) -> dict[str, pl.DataFrame]:
    str_cols = ("site_id", "site_name", "country", "isic")
    sites = pl.DataFrame(site_rows, schema={
        "line": pl.Int64, "content_hash": pl.Utf8,
        **{f"{k}__type": pl.Utf8 for k in TOP_LEVEL_KEYS}, **{k: pl.Utf8 for k in str_cols}})

    # duplicate site ids: every occurrence after the first names the first line
    first_line = pl.col("line").min().over("site_id")
    sites = sites.with_columns(
        pl.when(pl.col("site_id").is_not_null() & (pl.col("line") != first_line))
        .then(first_line).alias("duplicate_of_line"))

    # country: map distinct strings once; an unmapped value keeps its raw text so the
    # universe check reports it
    distinct = sites["country"].drop_nulls().unique().to_list()
    mapping = to_iso3(distinct)
    cmap = pl.DataFrame({"country": list(mapping), "_mapped": list(mapping.values())},
                        schema={"country": pl.Utf8, "_mapped": pl.Utf8})
    sites = sites.join(cmap, on="country", how="left").with_columns(
        pl.coalesce("_mapped", pl.col("country")).alias("iso3")).drop("_mapped")

    # ISIC: 'C1410' -> '1410' when the letter is the code's own section; bare section
    # letters and 2-4 digit codes as given
    parts = pl.col("isic").str.strip_chars().str.to_uppercase().str.extract_groups(r"^([A-U]?)(\d{2,4})?$")
    sites = sites.with_columns(
        parts.struct.field("1").alias("_letter"), parts.struct.field("2").alias("_digits"))
    sections = isic.select(pl.col("code").alias("_digits"), pl.col("section").alias("_own_section"))
    sites = sites.join(sections, on="_digits", how="left").with_columns(
        pl.when(pl.col("_digits").is_null() & (pl.col("_letter") != ""))
        .then(pl.col("_letter"))
        .when(pl.col("_digits").is_not_null()
              & ((pl.col("_letter") == "") | (pl.col("_letter") == pl.col("_own_section"))))
        .then(pl.col("_digits"))
        .otherwise(pl.col("isic"))
        .alias("isic_code")
    ).drop("_letter", "_digits", "_own_section")
    sites = sites.join(isic.select(pl.col("code").alias("isic_code"), pl.col("level").alias("isic_level")),
                       on="isic_code", how="left")

    keys = pl.DataFrame(key_rows, schema={"line": pl.Int64, "scope": pl.Utf8, "key": pl.Utf8,
                                          "_field": pl.Utf8}).with_columns(pl.col("key").alias("_shown"))

    fields = saq_fields.select(
        "field", pl.col("type").alias("expected_type"), pl.col("min").cast(pl.Float64),
        pl.col("max").cast(pl.Float64),
        pl.col("allowed_values").cast(pl.Utf8).str.split("|").alias("allowed"))
    saq = pl.DataFrame(saq_rows, schema={
        "line": pl.Int64, "field": pl.Utf8, "json_type": pl.Utf8, "value_num": pl.Float64,
        "value_bool": pl.Boolean, "value_text": pl.Utf8, "_shown": pl.Utf8,
    }).join(fields, on="field", how="left").with_columns(
        (pl.lit("saq.") + pl.col("field")).alias("_field"),
        pl.when(pl.col("expected_type").is_not_null())
        .then(pl.col("_shown") + ", expected " + pl.col("expected_type"))
        .otherwise(pl.col("_shown")).alias("_shown"))

    ctl = pl.DataFrame(ctl_rows, schema={"line": pl.Int64, "pos": pl.Int64, "json_type": pl.Utf8,
                                         "control_id": pl.Utf8, "_field": pl.Utf8}) \
        .with_columns(pl.col("control_id").alias("_shown"))

    audits = pl.DataFrame(audit_rows, schema={
        "line": pl.Int64, "pos": pl.Int64, "json_type": pl.Utf8, "_field": pl.Utf8,
        **{f"{k}__type": pl.Utf8 for k in AUDIT_KEYS}, **{k: pl.Utf8 for k in AUDIT_KEYS}})
    first_pos = pl.col("pos").min().over("line", "nc_id")
    audits = audits.with_columns(
        pl.col("raised_on").str.to_date("%Y-%m-%d", strict=False).alias("raised_on_date"),
        pl.col("closed_on").str.to_date("%Y-%m-%d", strict=False).alias("closed_on_date"),
        pl.when(pl.col("nc_id").is_not_null() & (pl.col("pos") != first_pos))
        .then(first_pos).alias("nc_first_pos"),
    ).with_columns(pl.concat_str(
        [pl.lit("nc_id="), pl.col("nc_id").fill_null("?"), pl.lit(" raised_on="),
         pl.col("raised_on").fill_null("-"), pl.lit(" closed_on="), pl.col("closed_on").fill_null("-")]
    ).alias("_shown"))
    return {"sites": sites, "keys": keys, "saq": saq, "controls": ctl, "audits": audits}
