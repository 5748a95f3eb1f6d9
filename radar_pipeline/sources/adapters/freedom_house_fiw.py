"""Freedom House — Freedom in the World "All data" workbook (all editions since 2013).

Sheet whose name starts "FIW" (e.g. "FIW13-24"): a title row, then the header
row (located by content). One row per country/territory and edition; the
registry's series are sub-indicator columns (D2, F4, 0-4 each).
data_year = the `Edition` column (every edition in the file is returned).
Names only (`Country/Territory`), no code.
"""
from __future__ import annotations

import polars as pl

from radar_pipeline.sources.toolkit import IndicatorSpec, LandedFile, SourceError, check_content
from radar_pipeline.sources.toolkit import tables as t

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
    return t.series_columns_to_long(df, cols, specs, source=SOURCE, file=file, sheet=sheet,
                                    country=COUNTRY, year=EDITION)


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    return t.parse_each(SOURCE, FILE_PATTERNS, _parse_file, files, specs)
