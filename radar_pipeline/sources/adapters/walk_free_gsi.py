"""Walk Free — Global Slavery Index data workbook (`slavery_2023.xlsx`, released May 2023).

Only the vulnerability dimension "Disenfranchised groups" (0-100, higher = more vulnerable) is
a pipeline input (METHODOLOGY §2, topic discrimination); the registry's `series` names its
column. The GSI's prevalence estimate, its other vulnerability dimensions and the
government-response scores are NOT read.

Layout: sheet `GSI <year> summary data` (the workbook's other sheets are codebooks, import
data and Beyond Compliance tables). Row 1 holds group labels (PREVALENCE, VULNERABILITY,
GOVERNMENT RESPONSE), row 2 the header (`Country, Population, Region, ..., Governance
issues, Lack of basic needs, Inequality, Disenfranchised groups, Effects of conflict, Total
Vulnerability score (%), ...`), located by content as the row holding two of `Country`,
`Population`, `Region` and the series column; one row per country below it (180 in 2023). A country without a
vulnerability estimate (20 small states in 2023) has an empty cell: no row.

data_year = the year in the sheet name (`GSI 2023 summary data` -> 2023: the index edition
the estimates describe). Names only (`Country`), no code; names are mapped centrally.

The publisher's workbook holds a broken external link; it is read with fastexcel/calamine
(toolkit `tables`), which does not follow links, so that does not matter here.
"""
from __future__ import annotations

import re

import polars as pl

from radar_pipeline.sources.toolkit import IndicatorSpec, LandedFile, SourceError, check_content
from radar_pipeline.sources.toolkit import tables as t

SOURCE = "walk_free_gsi"
FILE_PATTERNS = ("*.xlsx",)

COUNTRY = "Country"
HEADER_MARKERS = ["Population", "Region"]
SHEET = re.compile(r"^\s*GSI\s+(\d{4})\s+summary\s+data\s*$", re.IGNORECASE)


def _parse_file(file: LandedFile, specs: list[IndicatorSpec]) -> pl.DataFrame:
    check_content(file, "xlsx")
    sheets = t.sheet_names(file)
    found = [(s, m) for s in sheets if (m := SHEET.match(s))]
    if not found:
        raise SourceError(SOURCE, f"no sheet named 'GSI <year> summary data'; sheets found: {sheets}",
                          file=file.name)
    sheet, match = found[0]
    year, where = int(match.group(1)), f"sheet '{sheet}'"
    series = list(dict.fromkeys(s.series for s in specs))
    expected = [COUNTRY, *series]
    raw = t.read_sheet_raw(file, sheet)
    # located by the country column and its neighbours, so that a renamed series column is
    # reported by name (require_columns) rather than as a missing header row
    markers = [COUNTRY, *HEADER_MARKERS, *series]
    df = t.apply_header(raw, t.locate_header(raw, markers, source=SOURCE, file=file.name, where=where))
    cols = t.require_columns(df, expected, source=SOURCE, file=file.name, where=where)
    df = (df.select(pl.col(cols[COUNTRY]).str.strip_chars().alias("country"), pl.col(t.ROW),
                    *[pl.col(cols[s]).alias(s) for s in series])
            .filter(pl.col("country").fill_null("") != ""))
    dup = (df.with_columns(pl.col(t.ROW).min().over("country").alias("__first"))
             .filter(pl.col(t.ROW) != pl.col("__first")).head(1))
    if dup.height:
        raise SourceError(SOURCE, f"country {dup['country'].item()!r} appears twice (first on row "
                          f"{dup['__first'].item()})", file=file.name,
                          row=f"{where} row {dup[t.ROW].item()}", field=COUNTRY)
    by_series = {s.series: s.indicator_id for s in specs}
    long = (df.unpivot(on=series, index=["country", t.ROW], variable_name="series", value_name="raw_value")
              .with_columns(
                  pl.format("sheet '{}' row {}, column '{}'", pl.lit(sheet), pl.col(t.ROW),
                            pl.col("series")).alias("row_ref"),
                  pl.col("series").replace_strict(by_series, return_dtype=pl.String).alias("indicator_id")))
    long = t.parse_values(long, "raw_value", source=SOURCE, file=file.name, field_col="series")
    return long.with_columns(pl.lit(SOURCE).alias("source"), pl.lit(file.vintage).alias("vintage"),
                             pl.lit(file.name).alias("file"), pl.lit(None, pl.String).alias("code"),
                             pl.lit(year, pl.Int32).alias("data_year"))


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    return t.parse_each(SOURCE, FILE_PATTERNS, _parse_file, files, specs)
