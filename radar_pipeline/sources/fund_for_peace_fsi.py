"""Fund for Peace — Fragile States Index download workbook (one edition per file).

Single sheet (`Sheet1`), header located by content (row holding `Country` and
`Year`). The registry's series is the indicator column, e.g. "C3: Group
Grievance" (0-10). data_year = the `Year` column; in the 2023 file it is an
integer, but older FSI downloads store a date there, so the year is taken as
the first four digits of the cell text (works for 2023, 2023.0 and a date).
Names only (`Country`), no code.
"""
from __future__ import annotations

import polars as pl

from radar_pipeline.sources import _publisher_tables as t
from radar_pipeline.sources.base import (IndicatorSpec, LandedFile, SourceError, check_content,
                                         conform, empty_observations)

SOURCE = "fund_for_peace_fsi"
FILE_PATTERNS = ("*.xlsx",)

COUNTRY, YEAR = "Country", "Year"


def _parse_file(file: LandedFile, specs: list[IndicatorSpec]) -> pl.DataFrame:
    check_content(file, "xlsx")
    sheets = t.sheet_names(file)
    series = list(dict.fromkeys(s.series for s in specs))
    expected = [COUNTRY, YEAR, *series]
    # The data sheet is the first sheet whose header holds Country and Year.
    sheet = raw = hdr = None
    for name in sheets:
        candidate = t.read_sheet_raw(file, name)
        try:
            hdr = t.locate_header(candidate, expected, source=SOURCE, file=file.name,
                                  where=f"sheet '{name}'")
        except SourceError:
            continue
        sheet, raw = name, candidate
        break
    if raw is None:
        raise SourceError(SOURCE, f"no sheet with a header holding {expected}; sheets found: "
                          f"{sheets}", file=file.name)
    where = f"sheet '{sheet}'"
    df = t.apply_header(raw, hdr)
    cols = t.require_columns(df, expected, source=SOURCE, file=file.name, where=where)
    by_series = {s.series: s.indicator_id for s in specs}
    long = (df.select(pl.col(cols[COUNTRY]).str.strip_chars().alias("country"),
                      pl.col(cols[YEAR]).alias(YEAR), pl.col(t.ROW),
                      *[pl.col(cols[s]).alias(s) for s in series])
              .filter(pl.col("country").is_not_null())
              .unpivot(on=series, index=["country", YEAR, t.ROW], variable_name="series",
                       value_name="raw_value")
              .with_columns(
                  pl.format("sheet '{}' row {}, column '{}'", pl.lit(sheet), pl.col(t.ROW),
                            pl.col("series")).alias("row_ref"),
                  pl.col("series").replace_strict(by_series, return_dtype=pl.String)
                  .alias("indicator_id"),
                  t.year_from_text(YEAR).alias("data_year")))
    long = t.parse_values(long, "raw_value", source=SOURCE, file=file.name, field_col="series")
    t.check_years(long, YEAR, source=SOURCE, file=file.name)
    return long.with_columns(pl.lit(SOURCE).alias("source"), pl.lit(file.vintage).alias("vintage"),
                             pl.lit(file.name).alias("file"), pl.lit(None, pl.String).alias("code"))


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    if not specs:
        return empty_observations()
    if not files:
        raise SourceError(SOURCE, f"no file matching {FILE_PATTERNS} in the vintage folder")
    return conform(pl.concat([_parse_file(f, specs) for f in files], how="diagonal_relaxed"))
