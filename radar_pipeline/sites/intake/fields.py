"""Site intake: what a site file is checked against and what the intake produces — the
limits, the result tables' schemas (IntakeResult; the SAQ one row per site, one typed column per
question of rules/saq_fields.csv), the questionnaire reader, and the country / ISIC resolution
both readers share (radar_pipeline/sites/intake/__init__.py describes the flow)."""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from radar_pipeline.platform.identifiers import ID_REGEX
from radar_pipeline.platform.lazy import lazy_attributes
from radar_pipeline.platform.settings import rules_dir
from radar_pipeline.sources.reference.countries import converter

if TYPE_CHECKING:
    import polars as pl

MAX_LINE_BYTES = 1 << 20  # 1 MiB
SITE_ID_PATTERN = ID_REGEX  # plus "not only dots": radar_pipeline/platform/identifiers.py, the one id rule
TOP_LEVEL_KEYS = ("site_id", "site_name", "country", "isic", "saq", "controls", "audits")
AUDIT_KEYS = ("nc_id", "severity", "status", "raised_on", "closed_on")
SEVERITIES = ("business_critical", "critical", "major", "minor", "observation")
STATUSES = ("open", "closed")
SHOWN_CHARS = 60  # rejected values are echoed in the reason, truncated
# Size caps of one site: a line over them is rejected with one reason, without building a
# row per element (a 1 MiB line of `"controls":[0,0,...]` would otherwise make 500k rows).
MAX_ITEMS = 500   # elements of `controls` / `audits`, keys of `saq`
MAX_KEYS = 50     # keys of the site object, keys of all audit findings of a line (per finding x 10)
MORE_SHOWN = 4    # problems listed in the one reject row of a line after the first
SITE_ID_SHOWN_CHARS = 128

MAX_INTEGER = 2**63  # an integer answer is stored as BIGINT: whole numbers below this in size


# polars dtypes, built on first use: the definitions load without polars (issue 24 item 3)
@functools.cache
def sites_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {
        "site_id": pl.Utf8, "site_name": pl.Utf8, "iso3": pl.Utf8, "isic_code": pl.Utf8,
        "isic_level": pl.Utf8, "isic_class": pl.Utf8, "source_file": pl.Utf8,
        "source_line": pl.Int64, "content_hash": pl.Utf8,
    }


# site_saq is one row per site, one typed column per question (radar_pipeline/metadata/saq_table.py)
@functools.cache
def saq_dtypes() -> dict[str, pl.DataType]:
    import polars as pl

    return {"integer": pl.Int64, "number": pl.Float64, "boolean": pl.Boolean, "enum": pl.Utf8, "text": pl.Utf8}


@functools.cache
def controls_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {"site_id": pl.Utf8, "control_id": pl.Utf8}


@functools.cache
def nc_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {"site_id": pl.Utf8, "nc_id": pl.Utf8, "severity": pl.Utf8, "status": pl.Utf8,
            "raised_on": pl.Date, "closed_on": pl.Date}


@functools.cache
def rejects_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {"file": pl.Utf8, "line": pl.Int64, "site_id": pl.Utf8, "field": pl.Utf8,
            "reason": pl.Utf8}


SCHEMA_GETTERS = {"SITES_SCHEMA": sites_schema, "SAQ_DTYPES": saq_dtypes, "CONTROLS_SCHEMA": controls_schema,
                  "NC_SCHEMA": nc_schema, "REJECTS_SCHEMA": rejects_schema}
__getattr__ = lazy_attributes(__name__, **SCHEMA_GETTERS)


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
    import polars as pl

    return pl.read_csv(
        path or rules_dir() / "saq_fields.csv",
        schema_overrides={"min": pl.Float64, "max": pl.Float64, "allowed_values": pl.Utf8},
    )


def saq_specs(saq_fields: pl.DataFrame) -> list[tuple]:
    """Each question as (field, type, min, max, allowed values or None): what both intakes check an
    answer against (fast.py, native.py)."""
    return [(r["field"], r["type"], r["min"], r["max"],
             None if r["allowed_values"] is None else r["allowed_values"].split("|"))
            for r in saq_fields.iter_rows(named=True)]


def saq_schema(saq_fields: pl.DataFrame) -> dict[str, pl.DataType]:
    """Columns of IntakeResult.saq (and of the table site_saq): site_id, then one per question,
    typed as saq_fields.csv says."""
    import polars as pl

    return {"site_id": pl.Utf8, **{r["field"]: saq_dtypes()[r["type"]]
                                   for r in saq_fields.select("field", "type").iter_rows(named=True)}}


def _wide_saq(long: pl.DataFrame, saq_fields: pl.DataFrame, key: str) -> pl.DataFrame:
    """Long answers (key, field, value_num, value_bool, value_text; valid, at most one per key and
    field) -> one row per key, one typed column per question; keys without answers have no row."""
    import polars as pl

    source = {"integer": "value_num", "number": "value_num", "boolean": "value_bool",
              "enum": "value_text", "text": "value_text"}
    specs = list(saq_fields.select("field", "type").iter_rows())
    if long.height == 0:
        return pl.DataFrame(schema={key: long.schema[key], **{f: saq_dtypes()[t] for f, t in specs}})
    return long.group_by(key, maintain_order=True).agg(
        pl.col(source[t]).filter(pl.col("field") == f).first().cast(saq_dtypes()[t]).alias(f) for f, t in specs)


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
    data = _converter_columns()
    exact: dict[str, str] = {}
    for col in ("name_official", "name_short", "ISO2", "ISO3"):
        for value, iso3 in zip(data[col], data["ISO3"]):
            if isinstance(value, str) and isinstance(iso3, str) and value:
                exact[_norm(value)] = iso3
    regexes = [(re.compile(r, re.IGNORECASE), iso3) for r, iso3 in zip(data["regex"], data["ISO3"])
               if isinstance(r, str) and isinstance(iso3, str)]
    return exact, regexes


_CONVERTER_COLUMNS = ("name_official", "name_short", "ISO2", "ISO3", "regex")


def _converter_columns() -> dict[str, list]:
    """The columns of country_converter's table that _country_names reads, in its row order, as
    CountryConverter() (its defaults) holds them: read from the package's country_data.tsv with the
    csv module (importing country_converter imports pandas, ~0.5 s of `radar score`'s start), the
    obsolete rows left out and the rows of a repeated short name, official name or regex but the
    last dropped, as the converter does. Falls back to the converter itself when the file is not as
    this expects (test_intake_paths compares both)."""
    import csv
    from importlib.util import find_spec

    try:
        spec = find_spec("country_converter")
        path = Path(spec.origin).parent / "country_data.tsv"  # type: ignore[union-attr, arg-type]
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if not rows or any(key not in rows[0] for key in (*_CONVERTER_COLUMNS, "obsolete")):
            raise ValueError("columns")
        # obsolete: a year, or empty (pandas reads anything else as missing too: not expected here)
        if any(r["obsolete"] and not r["obsolete"].isdigit() for r in rows):
            raise ValueError("obsolete")
        rows = [r for r in rows if not r["obsolete"]]
        for key in ("name_short", "name_official", "regex"):  # drop_duplicates(keep="last"), in turn
            last = {r[key]: i for i, r in enumerate(rows)}
            rows = [r for i, r in enumerate(rows) if last[r[key]] == i]
        if any(not r[col] for r in rows for col in _CONVERTER_COLUMNS):  # an empty cell: as pandas would
            raise ValueError("empty")
        return {col: [r[col] for r in rows] for col in _CONVERTER_COLUMNS}
    except (OSError, ValueError, AttributeError, TypeError, UnicodeDecodeError, csv.Error):
        data = converter().data
        return {col: list(data[col]) for col in _CONVERTER_COLUMNS}


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


def _empty_result(saq_fields: pl.DataFrame) -> IntakeResult:
    import polars as pl

    return IntakeResult(sites=pl.DataFrame(schema=sites_schema()), saq=pl.DataFrame(schema=saq_schema(saq_fields)),
                        controls=pl.DataFrame(schema=controls_schema()),
                        nonconformities=pl.DataFrame(schema=nc_schema()), rejects=pl.DataFrame(schema=rejects_schema()))

def _resolve_sites(sites: pl.DataFrame, isic: pl.DataFrame, iso3_cache: dict[str, str | None]) -> pl.DataFrame:
    """Add iso3 (country mapped; an unmapped value keeps its raw text so the universe check
    reports it), isic_code and isic_level. Shared by the fast and the exact path."""
    import polars as pl

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
