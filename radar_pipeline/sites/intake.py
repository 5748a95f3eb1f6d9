"""Intake of buyer site files (JSON Lines, see /work/shared/SITE_INPUT.md).

Flow (`iter_sites_jsonl`: one result per chunk of CHUNK_LINES lines, so memory is
bounded by the chunk, not the file; `read_sites_jsonl` concatenates the chunks):
1. Each physical line is read with a hard size cap (lines over 1 MiB are rejected
   without being parsed).
2. Fast path, for the lines that are valid (nearly all of a real file): orjson parses
   the line; the top level, SAQ keys and audit keys are checked in Python, and the values
   are gathered column-wise (one list per SAQ field / control / audit key) and checked as
   polars columns (types, ranges, enums, catalogue, dates, site_id regex, country and
   ISIC). The content hash is sha256 of orjson's sorted-keys bytes, which equal
   `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)` for the lines
   the fast path keeps (no backslash escapes; floats printed alike).
3. Exact path: every line the fast path cannot prove valid — malformed, over the cap, any
   rule broken, a duplicate site_id, escapes, a possible repeated key, floats outside the
   range where both printers agree — is re-read by the original reader: `json` with
   duplicate-key and constant checks, flattened into small typed frames (site, SAQ answer,
   control, audit finding, key) validated by pandera polars schemas. Every failure becomes
   a reject row naming the file, line, site id (when it is a string), field and reason. So
   all rejects, and their wording, come from the exact path.
4. Duplicate site_ids are tracked across chunks (a dict of the ids seen so far): a
   second occurrence is rejected with the first line's number.

Values are never interpolated into SQL: the result is polars frames, which
callers hand to DuckDB as Arrow/Parquet.
"""
from __future__ import annotations

import functools
import gc
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson
import pandera.polars as pa
import polars as pl

from radar_pipeline.identifiers import ID_REGEX, ID_RULE, id_expr
from radar_pipeline.settings import rules_dir
from radar_pipeline.sources.reference.countries import converter

MAX_LINE_BYTES = 1 << 20  # 1 MiB
SITE_ID_PATTERN = ID_REGEX  # plus "not only dots": radar_pipeline/identifiers.py, the one id rule
TOP_LEVEL_KEYS = ("site_id", "site_name", "country", "isic", "saq", "controls", "audits")
AUDIT_KEYS = ("nc_id", "severity", "status", "raised_on", "closed_on")
SEVERITIES = ("business_critical", "critical", "major", "minor", "observation")
STATUSES = ("open", "closed")
SHOWN_CHARS = 60  # rejected values are echoed in the reason, truncated
# Size caps of one site: a line over them is rejected with one reason, without building a
# row per element (a 1 MiB line of `"controls":[0,0,...]` would otherwise make 500k rows).
MAX_ITEMS = 500   # elements of `controls` / `audits`, keys of `saq`
MAX_KEYS = 50     # keys of the site object, keys of all audit findings of a line (per finding x 10)
# Rows the exact path builds at once (estimated from the lines' bytes): bounds its memory
# whatever the file holds. A group is validated, its rejects folded to one row per line.
EXACT_ROWS_BUDGET = 300_000
MORE_SHOWN = 4    # problems listed in the one reject row of a line after the first
SITE_ID_SHOWN_CHARS = 128

SITES_SCHEMA = {
    "site_id": pl.Utf8, "site_name": pl.Utf8, "iso3": pl.Utf8, "isic_code": pl.Utf8,
    "isic_level": pl.Utf8, "isic_class": pl.Utf8, "source_file": pl.Utf8,
    "source_line": pl.Int64, "content_hash": pl.Utf8,
}
# site_saq is one row per site, one typed column per question (radar_pipeline/metadata/saq_table.py)
SAQ_DTYPES = {"integer": pl.Int64, "number": pl.Float64, "boolean": pl.Boolean, "enum": pl.Utf8, "text": pl.Utf8}
MAX_INTEGER = 2**63  # an integer answer is stored as BIGINT: whole numbers below this in size
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
        path or rules_dir() / "saq_fields.csv",
        schema_overrides={"min": pl.Float64, "max": pl.Float64, "allowed_values": pl.Utf8},
    )


def saq_schema(saq_fields: pl.DataFrame) -> dict[str, pl.DataType]:
    """Columns of IntakeResult.saq (and of the table site_saq): site_id, then one per question,
    typed as saq_fields.csv says."""
    return {"site_id": pl.Utf8, **{r["field"]: SAQ_DTYPES[r["type"]]
                                   for r in saq_fields.select("field", "type").iter_rows(named=True)}}


def _wide_saq(long: pl.DataFrame, saq_fields: pl.DataFrame, key: str) -> pl.DataFrame:
    """Long answers (key, field, value_num, value_bool, value_text; valid, at most one per key and
    field) -> one row per key, one typed column per question; keys without answers have no row."""
    source = {"integer": "value_num", "number": "value_num", "boolean": "value_bool",
              "enum": "value_text", "text": "value_text"}
    specs = list(saq_fields.select("field", "type").iter_rows())
    if long.height == 0:
        return pl.DataFrame(schema={key: long.schema[key], **{f: SAQ_DTYPES[t] for f, t in specs}})
    return long.group_by(key, maintain_order=True).agg(
        pl.col(source[t]).filter(pl.col("field") == f).first().cast(SAQ_DTYPES[t]).alias(f) for f, t in specs)


# Short names that several countries answer to: rejected with the candidates, never guessed.
AMBIGUOUS_COUNTRIES = {"congo": ("COG", "COD"), "korea": ("KOR", "PRK"), "virgin islands": ("VGB", "VIR")}


def _norm(text: str) -> str:
    """Case, accents, apostrophe styles and spacing do not matter; anything else does."""
    decomposed = unicodedata.normalize("NFKD", text.replace("\u2019", "'"))
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).casefold().split())


@functools.lru_cache(maxsize=1)
def _country_names() -> tuple[dict[str, str], list[tuple[re.Pattern, str]]]:
    """Exact forms (ISO3, ISO2, short and official name, normalised) -> ISO3, and country_converter's
    regexes, used only when they match the WHOLE text (its `search` maps `Niger Delta` to Niger,
    `Guinea Pig` to Guinea, `United States of Americana` to the USA)."""
    data = converter().data
    exact: dict[str, str] = {}
    for col in ("name_official", "name_short", "ISO2", "ISO3"):
        for value, iso3 in zip(data[col], data["ISO3"]):
            if isinstance(value, str) and isinstance(iso3, str) and value:
                exact[_norm(value)] = iso3
    regexes = [(re.compile(r, re.IGNORECASE), iso3) for r, iso3 in zip(data["regex"], data["ISO3"])
               if isinstance(r, str) and isinstance(iso3, str)]
    return exact, regexes


def to_iso3(values: list[str]) -> dict[str, str | None]:
    """Map distinct country strings to ISO3: an ISO3/ISO2 code, a country's short or official
    name, or a name country_converter's pattern matches as a whole. Anything else — a longer
    text that merely contains a country name, an ambiguous short name — maps to None."""
    exact, regexes = _country_names()
    out: dict[str, str | None] = {}
    for value in values:
        name = _norm(value)
        if not name or len(name) > 100 or name in AMBIGUOUS_COUNTRIES:
            out[value] = None
        elif name in exact:
            out[value] = exact[name]
        else:
            hits = {iso3 for pattern, iso3 in regexes if pattern.fullmatch(name)}
            out[value] = hits.pop() if len(hits) == 1 else None
    return out


def country_shown(value: str) -> str:
    """How an unmapped country is shown in its reject: ambiguous names list the candidates."""
    candidates = AMBIGUOUS_COUNTRIES.get(_norm(value))
    return f"{value} (ambiguous: one of {', '.join(candidates)})" if candidates else value


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


# --------------------------------------------------------------------------- main

CHUNK_LINES = 50_000  # lines validated together; bounds memory whatever the file size
_BOM = b"\xef\xbb\xbf"
_NONE = type(None)


@dataclass
class _SlowRows:
    """Row dicts of the exact (stdlib json, row-by-row) path, as the original reader built them."""
    parse_rejects: list[dict]
    site_rows: list[dict]
    key_rows: list[dict]
    saq_rows: list[dict]
    ctl_rows: list[dict]
    audit_rows: list[dict]

    @classmethod
    def empty(cls) -> _SlowRows:
        return cls([], [], [], [], [], [])

    def extend(self, other: _SlowRows) -> None:
        for name in ("parse_rejects", "site_rows", "key_rows", "saq_rows", "ctl_rows", "audit_rows"):
            getattr(self, name).extend(getattr(other, name))

    def sort(self) -> None:
        for name in ("parse_rejects", "site_rows", "key_rows", "saq_rows", "ctl_rows", "audit_rows"):
            getattr(self, name).sort(key=lambda r: r["line"])  # stable: keeps the order within a line


def _parse_slow(lines: list[tuple[int, bytes | None, int]], ids_only: bool = False) -> _SlowRows:
    """The exact path: stdlib json with duplicate-key and constant checks, one dict per field.
    ids_only: only the site rows (for duplicate detection), no rows per answer/element."""
    out = _SlowRows.empty()
    parse_rejects, site_rows, key_rows = out.parse_rejects, out.site_rows, out.key_rows
    saq_rows, ctl_rows, audit_rows = out.saq_rows, out.ctl_rows, out.audit_rows
    for lineno, body, size in lines:
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
        try:
            digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        except UnicodeEncodeError:  # an escaped lone surrogate ("\ud800") is not a character
            parse_rejects.append({"line": lineno, "field": _surrogate_field(obj),
                                  "reason": "escaped lone surrogate (e.g. \\ud800): not valid Unicode text"})
            continue
        row = {"line": lineno, "content_hash": digest}
        for key in ("site_id", "site_name", "country", "isic", "saq", "controls", "audits"):
            row[f"{key}__type"] = _jtype(obj.get(key))
        for key in ("site_id", "site_name", "country", "isic"):
            row[key] = _str_or_none(obj.get(key))
        site_rows.append(row)
        if ids_only:
            continue
        oversized = _oversized(obj)
        if oversized:
            parse_rejects.extend({"line": lineno, "field": f, "reason": r} for f, r in oversized)
            continue  # rejected whole: no row per element
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
    return out


def _oversized(obj: dict) -> list[tuple[str | None, str]]:
    """(field, reason) for every part of a site over the size caps."""
    out: list[tuple[str | None, str]] = []
    if len(obj) > MAX_KEYS:
        out.append((None, f"the site object has {len(obj)} keys; at most {MAX_KEYS}"))
    for key, kind in (("saq", dict), ("controls", list), ("audits", list)):
        value = obj.get(key)
        if isinstance(value, kind) and len(value) > MAX_ITEMS:
            out.append((key, f"{len(value)} {'keys' if kind is dict else 'elements'}; at most {MAX_ITEMS}"))
    audits = obj.get("audits")
    if isinstance(audits, list) and len(audits) <= MAX_ITEMS:
        n_keys = sum(len(a) for a in audits if isinstance(a, dict))
        if n_keys > MAX_KEYS * 10:
            out.append(("audits", f"the audit findings have {n_keys} keys in all; at most {MAX_KEYS * 10}"))
    return out


def _surrogate_field(obj: Any, path: str = "", depth: int = 0) -> str | None:
    """The first field (saq.x, controls[3], ...) holding a lone surrogate, in a key or a value."""
    if depth > 50:
        return path or None
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        sub = f"{path}[{key}]" if isinstance(obj, list) else (f"{path}.{key}" if path else str(key))
        if isinstance(key, str) and not _encodable(key):
            return (path + "." if path else "") + key.encode("utf-8", "replace").decode()
        if isinstance(value, str) and not _encodable(value):
            return sub.encode("utf-8", "replace").decode()
        if isinstance(value, (dict, list)):
            found = _surrogate_field(value, sub, depth + 1)
            if found:
                return found
    return path or None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _estimated_rows(item: tuple[int, bytes | None, int]) -> int:
    """Upper bound of the exact path's rows for one line (elements are comma/brace separated),
    within the size caps."""
    body = item[1]
    if body is None:
        return 1
    return min(body.count(b",") + body.count(b"{") + 2, 3 * MAX_ITEMS + MAX_KEYS * 12)


def _one_reject_per_line(rejects: pl.DataFrame) -> pl.DataFrame:
    """Fold a line's reject rows into one: its first problem, plus a count and the next few.
    A hostile line breaking a rule thousands of times is one row, not thousands."""
    if rejects.height == 0 or rejects["line"].n_unique() == rejects.height:
        return rejects
    problem = pl.col("field").fill_null("line") + ": " + pl.col("reason")
    folded = rejects.group_by("line", maintain_order=True).agg(
        pl.col("file").first(), pl.col("site_id").first(), pl.col("field").first(),
        pl.col("reason").first(), pl.len().alias("_n"),
        problem.slice(1, MORE_SHOWN).str.join("; ").alias("_more"))
    reason = (pl.when(pl.col("_n") == 1).then(pl.col("reason"))
              .otherwise(pl.col("reason") + pl.format(" (+{} more problem(s) on this line: ", pl.col("_n") - 1)
                         + pl.col("_more")
                         + pl.when(pl.col("_n") > MORE_SHOWN + 1).then(pl.lit("; …)")).otherwise(pl.lit(")"))))
    return folded.select("file", "line", "site_id", "field", reason.alias("reason")).cast(REJECTS_SCHEMA)


def _empty_result(saq_fields: pl.DataFrame) -> IntakeResult:
    return IntakeResult(sites=pl.DataFrame(schema=SITES_SCHEMA), saq=pl.DataFrame(schema=saq_schema(saq_fields)),
                        controls=pl.DataFrame(schema=CONTROLS_SCHEMA),
                        nonconformities=pl.DataFrame(schema=NC_SCHEMA), rejects=pl.DataFrame(schema=REJECTS_SCHEMA))


class _Reader:
    """Validates one file chunk by chunk. Every line goes through a fast path (orjson,
    column-wise checks); a line the fast path cannot prove valid — malformed, any rule
    broken, a duplicate, escapes/odd numbers it does not reproduce byte for byte — is
    re-read by the exact path (the original row-by-row reader and pandera schemas), which
    alone writes reject rows. So rejects are the exact path's, and accepted rows are equal."""

    def __init__(self, file_name: str, countries: set[str], isic: pl.DataFrame, controls: set[str],
                 saq_fields: pl.DataFrame):
        self.file_name = file_name
        self.countries = countries
        self.isic = isic
        self.controls = controls
        self.saq_fields = saq_fields
        self.iso3_cache: dict[str, str | None] = {}
        self.seen: dict[str, int] = {}  # site_id (or a digest of a long one) -> first line
        self._schemas: dict[str, pa.DataFrameSchema] | None = None
        self.specs = [(r["field"], r["type"], r["min"], r["max"],
                       None if r["allowed_values"] is None else r["allowed_values"].split("|"))
                      for r in saq_fields.iter_rows(named=True)]
        self.saq_keys = frozenset(s[0] for s in self.specs)
        self.saq_schema = saq_schema(saq_fields)

    @property
    def schemas(self) -> dict[str, pa.DataFrameSchema]:
        if self._schemas is None:
            self._schemas = _schemas(self.countries, self.isic["code"].to_list(), self.controls, self.saq_fields)
        return self._schemas

    # ------------------------------------------------------------------ chunk

    def chunk(self, lines: list[tuple[int, bytes | None, int]]) -> IntakeResult:
        # the cyclic GC would re-scan every container parsed so far, over and over; nothing
        # here makes cycles, so it is paused for the chunk and restored after
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._chunk(lines)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _chunk(self, lines: list[tuple[int, bytes | None, int]]) -> IntakeResult:
        fast, slow_lines = self._fast_parse(lines)
        slow_ids = _parse_slow(slow_lines, ids_only=True).site_rows

        # duplicate site ids, across chunks: every parsed object with a string site_id
        # counts, in line order; later occurrences name the first line
        pairs = zip(fast["line"], fast["site_id"])
        if slow_ids:
            pairs = sorted([*pairs, *((r["line"], r["site_id"]) for r in slow_ids
                                      if r["site_id"] is not None)])
        dup: dict[int, int] = {}
        setdefault = self.seen.setdefault
        for line, sid in pairs:
            if len(sid) > 128:
                sid = "\x00" + hashlib.sha256(sid.encode("utf-8", "surrogatepass")).hexdigest()
            first = setdefault(sid, line)
            if first != line:
                dup[line] = first

        frames, bad = self._fast_frames(fast)
        bad.update(dup.keys() & set(fast["line"]) if dup else ())
        if bad:
            by_line = {item[0]: item for item in lines}
            slow_lines = sorted([*slow_lines, *(by_line[line] for line in bad)], key=lambda item: item[0])
        exact = self._exact(slow_lines, dup)

        good = frames["sites"].filter(~pl.col("line").is_in(list(bad))) if bad else frames["sites"]
        line_to_site = good.select("line", "site_id")
        sites = good.select(
            "site_id", "site_name", "iso3", "isic_code", "isic_level",
            pl.when(pl.col("isic_level") == "class").then(pl.col("isic_code")).alias("isic_class"),
            pl.lit(self.file_name).alias("source_file"), pl.col("line").alias("source_line"), "content_hash",
        ).cast(SITES_SCHEMA)
        saq = frames["saq"].join(line_to_site, on="line", how="inner", maintain_order="left")
        ctl = frames["controls"].join(line_to_site, on="line", how="inner", maintain_order="left")
        ncs = frames["audits"].join(line_to_site, on="line", how="inner", maintain_order="left")
        saq_cols = self.saq_schema
        if exact is None:
            return IntakeResult(
                sites=sites, saq=saq.select(list(saq_cols)).cast(saq_cols),
                controls=ctl.select("site_id", "control_id").unique(maintain_order=True).cast(CONTROLS_SCHEMA),
                nonconformities=ncs.select(list(NC_SCHEMA)).cast(NC_SCHEMA),
                rejects=pl.DataFrame(schema=REJECTS_SCHEMA))
        ex, ex_lines = exact
        order = {"maintain_order": True}
        return IntakeResult(
            sites=pl.concat([sites.with_columns(_l=pl.col("source_line")),
                             ex.sites.with_columns(_l=pl.col("source_line"))]).sort("_l", **order).drop("_l"),
            saq=pl.concat([saq.select("line", *saq_cols).cast(saq_cols),
                           ex.saq.join(ex_lines, on="site_id", how="left", maintain_order="left")
                           .select("line", *saq_cols)]).sort("line", **order).drop("line"),
            controls=pl.concat([ctl.select("line", "site_id", "control_id").cast(CONTROLS_SCHEMA),
                                ex.controls.join(ex_lines, on="site_id", how="left", maintain_order="left")
                                .select("line", "site_id", "control_id")])
            .sort("line", **order).drop("line").unique(maintain_order=True),
            nonconformities=pl.concat([ncs.select("line", *NC_SCHEMA).cast(NC_SCHEMA),
                                       ex.nonconformities.join(ex_lines, on="site_id", how="left",
                                                               maintain_order="left")
                                       .select("line", *NC_SCHEMA)]).sort("line", **order).drop("line"),
            rejects=ex.rejects)

    def _exact(self, slow_lines: list[tuple[int, bytes | None, int]], dup: dict[int, int]):
        """The exact path over `slow_lines` (in line order), in groups of about
        EXACT_ROWS_BUDGET rows so its row dicts stay bounded; one reject row per line."""
        parts: list[IntakeResult] = []
        group: list[tuple[int, bytes | None, int]] = []
        budget = 0
        for item in [*slow_lines, None]:
            if item is not None:
                group.append(item)
                budget += _estimated_rows(item)
            if group and (item is None or budget >= EXACT_ROWS_BUDGET):
                slow = _parse_slow(group)
                group, budget = [], 0
                if slow.parse_rejects or slow.site_rows:
                    res = _validate_rows(slow, dup, file_name=self.file_name, isic=self.isic,
                                         saq_fields=self.saq_fields, schemas=self.schemas,
                                         iso3_cache=self.iso3_cache)
                    parts.append(IntakeResult(res.sites, res.saq, res.controls, res.nonconformities,
                                              _one_reject_per_line(res.rejects)))
                del slow
        if not parts:
            return None
        res = parts[0] if len(parts) == 1 else IntakeResult(*(
            pl.concat([getattr(p, name) for p in parts])
            for name in ("sites", "saq", "controls", "nonconformities", "rejects")))
        ex_lines = res.sites.select("site_id", pl.col("source_line").alias("line"))
        return res, ex_lines

    # ------------------------------------------------------------------ fast path

    def _fast_parse(self, lines):
        """orjson per line; a line leaves the fast path (to `slow`) unless it is a JSON object
        whose top level has only known keys of the right JSON types, has no backslash escape
        (so strings are raw UTF-8 and orjson's canonical bytes equal json.dumps'), and has as
        many strings as it has quote pairs (so no key was given twice: orjson keeps the last)."""
        loads, dumps, sort_keys = orjson.loads, orjson.dumps, orjson.OPT_SORT_KEYS
        sha256 = hashlib.sha256
        top_keys = frozenset(TOP_LEVEL_KEYS)
        saq_keys = self.saq_keys
        audit_keys = frozenset(AUDIT_KEYS)
        f_line, f_id, f_name, f_country, f_isic, f_hash = [], [], [], [], [], []
        saq_line, saq_vals, ctl_line, ctls, aud_line, auds = [], [], [], [], [], []
        saq_fields = [spec[0] for spec in self.specs]
        enum_fields = [spec[0] for spec in self.specs if spec[1] == "enum"]
        slow = []
        for item in lines:
            lineno, body, _ = item
            if body is None:
                slow.append(item)
                continue
            if not body or body.isspace():
                continue  # blank lines are not records (same as the exact path)
            if b"\\" in body or body.startswith(_BOM):
                slow.append(item)
                continue
            try:
                obj = loads(body)
            except orjson.JSONDecodeError:
                slow.append(item)
                continue
            if type(obj) is not dict or not top_keys.issuperset(obj):
                slow.append(item)
                continue
            get = obj.get
            sid, country, isic, name = get("site_id"), get("country"), get("isic"), get("site_name")
            saq, ctl, aud = get("saq"), get("controls"), get("audits")
            if (type(sid) is not str or type(country) is not str or type(isic) is not str
                    or (name is not None and type(name) is not str)):
                slow.append(item)
                continue
            n_str = len(obj) + 3 + (name is not None)
            if saq is not None:
                if type(saq) is not dict or not saq_keys.issuperset(saq):
                    slow.append(item)
                    continue
                # strings in the SAQ: only enum answers may be strings (any other string
                # breaks a rule and the line goes to the exact path anyway), so counting
                # those undercounts at worst, which still fails the quote check below
                n_str += len(saq)
                for f in enum_fields:
                    if type(saq.get(f)) is str:
                        n_str += 1
            if ctl is not None:
                if type(ctl) is not list or len(ctl) > MAX_ITEMS:
                    slow.append(item)
                    continue
                n_str += list(map(type, ctl)).count(str)
            if aud is not None:
                if type(aud) is not list or len(aud) > MAX_ITEMS:
                    slow.append(item)
                    continue
                ok = True
                for a in aud:
                    if type(a) is not dict or not audit_keys.issuperset(a):
                        ok = False
                        break
                    n_str += len(a) + list(map(type, a.values())).count(str)
                if not ok:
                    slow.append(item)
                    continue
            if body.count(b'"') != 2 * n_str:
                slow.append(item)
                continue
            f_line.append(lineno)
            f_id.append(sid)
            f_name.append(name)
            f_country.append(country)
            f_isic.append(isic)
            f_hash.append(sha256(dumps(obj, option=sort_keys)).hexdigest())
            if saq:
                saq_line.append(lineno)
                saq_vals.extend(map(saq.get, saq_fields))  # row-wise while the dict is hot
            if ctl:
                ctl_line.append(lineno)
                ctls.append(ctl)
            if aud:
                aud_line.append(lineno)
                auds.append(aud)
        fast = {"line": f_line, "site_id": f_id, "site_name": f_name, "country": f_country, "isic": f_isic,
                "content_hash": f_hash, "saq_line": saq_line, "saq_vals": saq_vals, "ctl_line": ctl_line,
                "ctls": ctls, "aud_line": aud_line, "auds": auds}
        return fast, slow

    def _fast_frames(self, fast) -> tuple[dict[str, pl.DataFrame], set[int]]:
        """Column-wise frames of the fast lines and the set of lines that break (or may
        break) a rule — those go to the exact path."""
        bad: set[int] = set()
        sites = pl.DataFrame({k: fast[k] for k in ("line", "site_id", "site_name", "country", "isic",
                                                   "content_hash")},
                             schema={"line": pl.Int64, "site_id": pl.Utf8, "site_name": pl.Utf8,
                                     "country": pl.Utf8, "isic": pl.Utf8, "content_hash": pl.Utf8})
        sites = _resolve_sites(sites, self.isic, self.iso3_cache)
        bad.update(sites.filter(
            ~id_expr("site_id")
            | ~pl.col("iso3").is_in(sorted(self.countries))
            | ~pl.col("isic_code").is_in(self.isic["code"].to_list())
            | pl.col("isic_level").is_null()
        )["line"].to_list())

        # SAQ: one column per questionnaire field, typed as a whole, checked in one pass; kept
        # wide (site_saq is one row per site), rows of lines with at least one answer
        saq_line, saq_vals = fast["saq_line"], fast["saq_vals"]
        n_fields = len(self.specs)
        cols: dict[str, pl.Series] = {}
        wrong: list[pl.Expr] = []
        for k, (field, ftype, lo, hi, allowed) in enumerate(self.specs):
            col = saq_vals[k::n_fields]
            types = set(map(type, col))
            types.discard(_NONE)
            if not types:
                cols[field] = pl.Series(field, [None] * len(saq_line), dtype=SAQ_DTYPES[ftype])
                continue
            ok_types = {bool} if ftype == "boolean" else {str} if ftype == "enum" else {int, float}
            if not types <= ok_types:
                for i, v in enumerate(col):
                    if v is not None and type(v) not in ok_types:
                        bad.add(saq_line[i])
                        col[i] = None
            v = pl.col(field)
            if ftype == "boolean":
                cols[field] = pl.Series(field, col, dtype=pl.Boolean)
            elif ftype == "enum":
                cols[field] = pl.Series(field, col, dtype=pl.Utf8)
                wrong.append(~v.is_in(allowed or []))
            else:
                cols[field] = pl.Series(field, col, dtype=pl.Float64, strict=False)
                # finite, and in the range where orjson and json.dumps print a float alike
                w = ~v.is_finite() | ~((v == 0) | ((v.abs() >= 1e-4) & (v.abs() < 1e15)))
                if lo is not None:
                    w = w | (v < lo)
                if hi is not None:
                    w = w | (v > hi)
                if ftype == "integer":
                    w = w | (v != v.floor())
                wrong.append(w)
        wide = pl.DataFrame([pl.Series("line", saq_line, dtype=pl.Int64), *cols.values()])
        if wrong:
            bad.update(wide.filter(pl.any_horizontal([w.fill_null(False) for w in wrong]))["line"].to_list())
        # integers were checked as doubles (whole, |x| < 1e15 on this path): now BIGINT; a bad
        # line's value that does not fit becomes null, and the line goes to the exact path anyway
        saq = wide.with_columns(pl.col(spec[0]).cast(pl.Int64, strict=False)
                                for spec in self.specs if spec[1] == "integer")
        if self.specs:
            saq = saq.filter(pl.any_horizontal(pl.col(spec[0]).is_not_null() for spec in self.specs))

        # controls: strings from the catalogue
        ctls = fast["ctls"]
        flat = list(chain.from_iterable(ctls))
        lines = np.repeat(np.asarray(fast["ctl_line"], dtype=np.int64), list(map(len, ctls)))
        if not set(map(type, flat)) <= {str}:
            for line, v in zip(lines.tolist(), flat):
                if type(v) is not str:
                    bad.add(line)
            flat = [v if type(v) is str else None for v in flat]
        ctl = pl.DataFrame({"line": lines, "control_id": flat},
                           schema={"line": pl.Int64, "control_id": pl.Utf8})
        bad.update(ctl.filter(~pl.col("control_id").is_in(sorted(self.controls)).fill_null(False)
                              | pl.col("control_id").is_null())["line"].to_list())

        # audits: required strings, enums, dates, order, one nc_id per site
        auds = fast["auds"]
        items = list(chain.from_iterable(auds))
        a_lines = np.repeat(np.asarray(fast["aud_line"], dtype=np.int64), list(map(len, auds)))
        cols = {}
        for key in AUDIT_KEYS:
            col = list(map(dict.get, items, repeat(key)))
            required = key in ("nc_id", "severity", "status")
            ok = {str} if required else {str, _NONE}
            if not set(map(type, col)) <= ok:
                for line, v in zip(a_lines.tolist(), col):
                    if type(v) not in ok:
                        bad.add(line)
                col = [v if type(v) is str else None for v in col]
            cols[key] = col
        audits = pl.DataFrame({"line": a_lines, **cols},
                              schema={"line": pl.Int64, **dict.fromkeys(AUDIT_KEYS, pl.Utf8)}).with_columns(
            pl.col("raised_on").str.to_date("%Y-%m-%d", strict=False).alias("raised_on_date"),
            pl.col("closed_on").str.to_date("%Y-%m-%d", strict=False).alias("closed_on_date"))
        bad.update(audits.filter(
            pl.col("nc_id").is_null() | pl.col("severity").is_null() | pl.col("status").is_null()
            | ~pl.col("severity").is_in(list(SEVERITIES)) | ~pl.col("status").is_in(list(STATUSES))
            | (pl.col("raised_on").is_not_null() & pl.col("raised_on_date").is_null())
            | (pl.col("closed_on").is_not_null() & pl.col("closed_on_date").is_null())
            | (pl.col("closed_on_date") < pl.col("raised_on_date")).fill_null(False)
            | pl.struct("line", "nc_id").is_duplicated()
        )["line"].to_list())
        audits = audits.select("line", "nc_id", "severity", "status",
                               pl.col("raised_on_date").alias("raised_on"),
                               pl.col("closed_on_date").alias("closed_on"))
        return {"sites": sites, "saq": saq, "controls": ctl, "audits": audits}, bad


def iter_sites_jsonl(path: Path, *, countries: set[str], isic: pl.DataFrame, controls: set[str],
                     saq_fields: pl.DataFrame | None = None,
                     chunk_lines: int = CHUNK_LINES) -> Iterator[IntakeResult]:
    """Read a JSON Lines site file in chunks of `chunk_lines` lines, one IntakeResult per
    chunk (valid sites of those lines, their rejects). Duplicate site ids are detected
    across chunks. Memory is bounded by the chunk, not the file."""
    path = Path(path)
    saq_fields = saq_fields if saq_fields is not None else load_saq_fields()
    # the file's name, not its path: rejects are published, and a server path is nobody's business
    reader = _Reader(path.name, countries, isic, controls, saq_fields)
    with open(path, "rb") as fh:
        batch: list[tuple[int, bytes | None, int]] = []
        for item in _iter_lines(fh):
            batch.append(item)
            if len(batch) >= chunk_lines:
                yield reader.chunk(batch)
                batch = []
        if batch:
            yield reader.chunk(batch)


def read_sites_jsonl(path: Path, *, countries: set[str], isic: pl.DataFrame, controls: set[str],
                     saq_fields: pl.DataFrame | None = None, chunk_lines: int = CHUNK_LINES) -> IntakeResult:
    """Read one JSON Lines site file; valid sites in tables, everything else in `rejects`.

    countries: the ISO3 universe; isic: (code, level, section, division, grp,
    is_primary_producer); controls: catalogue control ids; saq_fields: the questionnaire
    definition (default rules/saq_fields.csv). Holds the whole result in memory: for big
    files use `iter_sites_jsonl` (store.ingest does)."""
    parts = list(iter_sites_jsonl(path, countries=countries, isic=isic, controls=controls,
                                  saq_fields=saq_fields, chunk_lines=chunk_lines)) \
        or [_empty_result(saq_fields if saq_fields is not None else load_saq_fields())]
    if len(parts) == 1:
        return parts[0]
    return IntakeResult(*(pl.concat([getattr(p, name) for p in parts])
                          for name in ("sites", "saq", "controls", "nonconformities", "rejects")))


def _validate_rows(rows: _SlowRows, dup: dict[int, int], *, file_name: str, isic: pl.DataFrame,
                   saq_fields: pl.DataFrame, schemas: dict[str, pa.DataFrameSchema],
                   iso3_cache: dict[str, str | None]) -> IntakeResult:
    """The exact path's validation (pandera), on the rows of some lines of a file."""
    frames = _build_frames(rows.site_rows, rows.key_rows, rows.saq_rows, rows.ctl_rows, rows.audit_rows,
                           isic=isic, saq_fields=saq_fields, dup=dup, iso3_cache=iso3_cache)
    failures = pl.concat(
        [pl.DataFrame(rows.parse_rejects, schema={"line": pl.Int64, "field": pl.Utf8, "reason": pl.Utf8})]
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
    saq_out = _wide_saq(frames["saq"].join(line_to_site, on="line", how="inner"), saq_fields, "site_id") \
        .select(list(saq_schema(saq_fields)))
    ctl_out = (frames["controls"].join(line_to_site, on="line", how="inner")
               .select("site_id", "control_id").unique(maintain_order=True).cast(CONTROLS_SCHEMA))
    nc_out = (frames["audits"].join(line_to_site, on="line", how="inner")
              .select("site_id", "nc_id", "severity", "status",
                      pl.col("raised_on_date").alias("raised_on"), pl.col("closed_on_date").alias("closed_on"))
              .cast(NC_SCHEMA))
    return IntakeResult(sites=sites, saq=saq_out, controls=ctl_out, nonconformities=nc_out,
                        rejects=rejects)


def _resolve_sites(sites: pl.DataFrame, isic: pl.DataFrame, iso3_cache: dict[str, str | None]) -> pl.DataFrame:
    """Add iso3 (country mapped; an unmapped value keeps its raw text so the universe check
    reports it), isic_code and isic_level. Shared by the fast and the exact path."""
    distinct = sites["country"].drop_nulls().unique().to_list()
    missing = [c for c in distinct if c not in iso3_cache]
    if missing:
        iso3_cache.update(to_iso3(missing))
    cmap = pl.DataFrame({"country": distinct, "_mapped": [iso3_cache[c] or country_shown(c) for c in distinct]},
                        schema={"country": pl.Utf8, "_mapped": pl.Utf8})
    sites = sites.join(cmap, on="country", how="left", maintain_order="left").with_columns(
        pl.coalesce("_mapped", pl.col("country")).alias("iso3")).drop("_mapped")

    # ISIC: 'C1410' -> '1410' when the letter is the code's own section; bare section
    # letters and 2-4 digit codes as given
    parts = pl.col("isic").str.strip_chars().str.to_uppercase().str.extract_groups(r"^([A-U]?)(\d{2,4})?$")
    sites = sites.with_columns(
        parts.struct.field("1").alias("_letter"), parts.struct.field("2").alias("_digits"))
    sections = isic.select(pl.col("code").alias("_digits"), pl.col("section").alias("_own_section"))
    sites = sites.join(sections, on="_digits", how="left", maintain_order="left").with_columns(
        pl.when(pl.col("_digits").is_null() & (pl.col("_letter") != ""))
        .then(pl.col("_letter"))
        .when(pl.col("_digits").is_not_null()
              & ((pl.col("_letter") == "") | (pl.col("_letter") == pl.col("_own_section"))))
        .then(pl.col("_digits"))
        .otherwise(pl.col("isic"))
        .alias("isic_code")
    ).drop("_letter", "_digits", "_own_section")
    return sites.join(isic.select(pl.col("code").alias("isic_code"), pl.col("level").alias("isic_level")),
                      on="isic_code", how="left", maintain_order="left")


def _build_frames(site_rows, key_rows, saq_rows, ctl_rows, audit_rows, *, isic: pl.DataFrame,
                  saq_fields: pl.DataFrame, dup: dict[int, int] | None = None,
                  iso3_cache: dict[str, str | None] | None = None) -> dict[str, pl.DataFrame]:
    str_cols = ("site_id", "site_name", "country", "isic")
    sites = pl.DataFrame(site_rows, schema={
        "line": pl.Int64, "content_hash": pl.Utf8,
        **{f"{k}__type": pl.Utf8 for k in TOP_LEVEL_KEYS}, **dict.fromkeys(str_cols, pl.Utf8)})

    # duplicate site ids: every occurrence after the first names the first line (`dup`
    # comes from the caller, which sees the whole file)
    if dup is None:
        first_line = pl.col("line").min().over("site_id")
        sites = sites.with_columns(
            pl.when(pl.col("site_id").is_not_null() & (pl.col("line") != first_line))
            .then(first_line).alias("duplicate_of_line"))
    else:
        sites = sites.with_columns(pl.col("line").replace_strict(
            list(dup), list(dup.values()), default=None, return_dtype=pl.Int64).alias("duplicate_of_line"))

    sites = _resolve_sites(sites, isic, iso3_cache if iso3_cache is not None else {})

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
        **{f"{k}__type": pl.Utf8 for k in AUDIT_KEYS}, **dict.fromkeys(AUDIT_KEYS, pl.Utf8)})
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
