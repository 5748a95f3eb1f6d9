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

from radar_pipeline.sources.toolkit import IndicatorSpec, LandedFile, SourceError, check_content
from radar_pipeline.sources.toolkit import tables as t

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
    return t.series_columns_to_long(df, cols, specs, source=SOURCE, file=file, sheet=sheet,
                                    country=COUNTRY, year=YEAR)


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    return t.parse_each(SOURCE, FILE_PATTERNS, _parse_file, files, specs)
