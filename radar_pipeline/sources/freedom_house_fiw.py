"""Freedom House — Freedom in the World "All data" workbook (all editions since 2013).

Sheet whose name starts "FIW" (e.g. "FIW13-24"): a title row, then the header
row (located by content). One row per country/territory and edition; the
registry's series are sub-indicator columns (D2, F4, 0-4 each).
data_year = the `Edition` column (every edition in the file is returned).
Names only (`Country/Territory`), no code.
"""
from __future__ import annotations

import polars as pl

from radar_pipeline.sources import _publisher_tables as t
from radar_pipeline.sources.base import (IndicatorSpec, LandedFile, SourceError, check_content,
                                         conform, empty_observations)

SOURCE = "freedom_house_fiw"
FILE_PATTERNS = ("*.xlsx",)

COUNTRY, EDITION = "Country/Territory", "Edition"


def _parse_file(file: LandedFile, specs: list[IndicatorSpec]) -> pl.DataFrame:
    check_content(file, "xlsx")
    sheets = t.sheet_names(file)
    fiw = [s for s in sheets if s.strip().upper().startswith("FIW")]
    if not fiw:
        raise SourceError(SOURCE, f"no sheet named 'FIW…'; sheets found: {sheets}", file=file.name)
    sheet, where = fiw[0], f"sheet '{fiw[0]}'"
    series = list(dict.fromkeys(s.series for s in specs))
    expected = [COUNTRY, EDITION, *series]
    raw = t.read_sheet_raw(file, sheet)
    df = t.apply_header(raw, t.locate_header(raw, expected, source=SOURCE, file=file.name,
                                             where=where))
    cols = t.require_columns(df, expected, source=SOURCE, file=file.name, where=where)
    by_series = {s.series: s.indicator_id for s in specs}
    long = (df.select(pl.col(cols[COUNTRY]).str.strip_chars().alias("country"),
                      pl.col(cols[EDITION]).alias(EDITION), pl.col(t.ROW),
                      *[pl.col(cols[s]).alias(s) for s in series])
              .filter(pl.col("country").is_not_null())
              .unpivot(on=series, index=["country", EDITION, t.ROW], variable_name="series",
                       value_name="raw_value")
              .with_columns(
                  pl.format("sheet '{}' row {}, column '{}'", pl.lit(sheet), pl.col(t.ROW),
                            pl.col("series")).alias("row_ref"),
                  pl.col("series").replace_strict(by_series, return_dtype=pl.String)
                  .alias("indicator_id"),
                  t.year_from_text(EDITION).alias("data_year")))
    long = t.parse_values(long, "raw_value", source=SOURCE, file=file.name, field_col="series")
    t.check_years(long, EDITION, source=SOURCE, file=file.name)
    return long.with_columns(pl.lit(SOURCE).alias("source"), pl.lit(file.vintage).alias("vintage"),
                             pl.lit(file.name).alias("file"), pl.lit(None, pl.String).alias("code"))


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    if not specs:
        return empty_observations()
    if not files:
        raise SourceError(SOURCE, f"no file matching {FILE_PATTERNS} in the vintage folder")
    return conform(pl.concat([_parse_file(f, specs) for f in files], how="diagonal_relaxed"))
