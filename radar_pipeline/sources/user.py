"""Generic user-supplied indicator file (METHODOLOGY §2), e.g. licensed data such as
a commercial Forced Labour Index, or ILOSTAT weekly hours.

Format (UTF-8 CSV, header required, column order free):

    iso3,indicator_id,year,value
    BGD,ilo_weekly_hours,2022,47.1

- `iso3`: ISO 3166-1 alpha-3 (or World Bank 3-letter) code; goes to `code`.
- `indicator_id`: any id of rules/indicators.csv (any source).
- `year`: integer data year; `value`: a number (empty = missing, dropped).

An unknown indicator id, an empty/malformed iso3, a non-integer year, a
non-numeric value or the same (iso3, indicator_id, year) twice is a
SourceError naming the line and field.
"""
from __future__ import annotations

import polars as pl

from radar_pipeline.sources._csv_text import (LINE, decode_text, first_bad, parse_float,
                                               read_csv_text)
from radar_pipeline.sources.base import (IndicatorSpec, LandedFile, SourceError, check_content,
                                         conform, empty_observations, load_indicator_specs)

SOURCE = "user"
FILE_PATTERNS = ("*.csv",)
COLUMNS = ["iso3", "indicator_id", "year", "value"]


def _parse_file(f: LandedFile, known_ids: list[str]) -> pl.DataFrame:
    df = read_csv_text(f, decode_text(f, check_content(f, "csv")))
    df = df.rename({c: c.strip().lower() for c in df.columns if c != LINE})
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise SourceError(SOURCE, f"missing column(s) {missing}; expected header "
                          f"{','.join(COLUMNS)}", file=f.name)
    df = df.with_columns(pl.col(c).str.strip_chars() for c in ("iso3", "indicator_id", "year"))
    first_bad(f, df, ~pl.col("indicator_id").is_in(known_ids).fill_null(False), "indicator_id",
              "indicator_id", "unknown indicator_id (not in rules/indicators.csv)")
    first_bad(f, df, ~pl.col("iso3").str.contains(r"^[A-Za-z]{3}$").fill_null(False), "iso3", "iso3",
              "iso3 must be a 3-letter country code")
    df = df.with_columns(pl.col("year").cast(pl.Int32, strict=False).alias("data_year"))
    first_bad(f, df, pl.col("data_year").is_null(), "year", "year", "year is not an integer")
    df = parse_float(f, df, "value", "value_f", "value")
    # conform() drops non-finite values; a user typing inf/nan must hear about it, not lose the row
    first_bad(f, df, pl.col("value_f").is_not_null() & ~pl.col("value_f").is_finite(), "value", "value",
              "value is not a finite number")
    dup = (df.with_columns(pl.col(LINE).min().over("iso3", "indicator_id", "data_year").alias("__first"))
             .filter(pl.col(LINE) != pl.col("__first")).head(1))
    if dup.height:
        raise SourceError(SOURCE, f"{dup['iso3'].item()} {dup['indicator_id'].item()} "
                          f"{dup['data_year'].item()} given twice (first on line {dup['__first'].item()})",
                          file=f.name, row=f"line {dup[LINE].item()}", field="iso3")
    return df.select(
        pl.lit(SOURCE).alias("source"), "indicator_id", pl.lit(f.vintage).alias("vintage"),
        pl.lit(f.name).alias("file"), pl.format("line {}", pl.col(LINE)).alias("row_ref"),
        pl.lit(None, pl.String).alias("country"), pl.col("iso3").alias("code"), "data_year",
        pl.col("value_f").alias("value"))


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    """`specs` is not used to select rows: a user file may carry any registry indicator."""
    if not files:
        return empty_observations()
    known_ids = sorted({s.indicator_id for s in load_indicator_specs()})
    return conform(pl.concat([_parse_file(f, known_ids) for f in files]))
