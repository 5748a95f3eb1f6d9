"""Global Health Security Index — full model CSV export (e.g. `2021-GHS-Index-April-2022.csv`).

Layout: UTF-8 with a byte-order mark, CRLF line ends; header `Country,Year,OVERALL SCORE,
1) PREVENTION OF ...,1.1) Antimicrobial resistance (AMR),...` — 313 columns in the April 2022
file, one per category / indicator / question, some header cells quoted (they hold commas, and
in some copies line breaks) and some ending in a space. One row per country x index year (2019
and 2021 in the April 2022 file). Names only (e.g. `United States of America`), no code, no
aggregates.

The registry's `series` is the column to read, e.g. `6.2) Socio-economic resilience` (score
0-100), matched with whitespace (line breaks included) normalised and case-insensitively.
`Year` gives data_year. Empty cell or `NA`-like tokens = no value; a country listed twice for
one year is a SourceError.
"""
from __future__ import annotations

import csv
import io

import polars as pl

from radar_pipeline.sources.toolkit import IndicatorSpec, LandedFile, SourceError, check_content
from radar_pipeline.sources.toolkit import tables as t

SOURCE = "ghs_index"
FILE_PATTERNS = ("*.csv",)

COUNTRY, YEAR = "Country", "Year"


def _header_lines(text: str) -> int:
    """Editor lines the header record spans (its quoted cells may hold line breaks)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        next(reader, None)
    except csv.Error:
        return 1  # read_csv_text reports the malformed file
    return max(reader.line_num, 1)


def _parse_file(file: LandedFile, specs: list[IndicatorSpec]) -> pl.DataFrame:
    text = t.decode_text(file, check_content(file, "csv"))
    df = t.read_csv_text(file, text)
    # read_csv_text numbers records from the line after the header's FIRST line; a header cell
    # with a line break pushes every record down by as many lines
    df = df.with_columns(pl.col(t.LINE) + (_header_lines(text) - 1))
    series = list(dict.fromkeys(s.series for s in specs))
    cols = t.require_columns(df, [COUNTRY, YEAR, *series], source=SOURCE, file=file.name)
    df = df.with_columns(pl.col(cols[COUNTRY]).str.strip_chars().alias("country"),
                         pl.col(cols[YEAR]).str.strip_chars().alias(YEAR))
    t.first_bad(file, df, pl.col("country").fill_null("") == "", COUNTRY, YEAR, "country is empty in year")
    dup = (df.with_columns(pl.col(t.LINE).min().over("country", YEAR).alias("__first"))
             .filter(pl.col(t.LINE) != pl.col("__first")).head(1))
    if dup.height:
        raise SourceError(SOURCE, f"country {dup['country'].item()!r} has two rows for year "
                          f"{dup[YEAR].item()!r} (first on line {dup['__first'].item()})",
                          file=file.name, row=f"line {dup[t.LINE].item()}", field=COUNTRY)
    by_series = {s.series: s.indicator_id for s in specs}
    long = (df.select("country", YEAR, t.LINE, *[pl.col(cols[s]).alias(s) for s in series])
              .unpivot(on=series, index=["country", YEAR, t.LINE], variable_name="series",
                       value_name="raw_value")
              .with_columns(
                  pl.format("line {}, column '{}'", pl.col(t.LINE),
                            pl.col("series").replace_strict({s: " ".join(cols[s].split()) for s in series}))
                    .alias("row_ref"),
                  pl.col("series").replace_strict(by_series, return_dtype=pl.String).alias("indicator_id"),
                  t.year_from_text(YEAR).alias("data_year")))
    long = t.parse_values(long, "raw_value", source=SOURCE, file=file.name, field_col="series")
    t.check_years(long, YEAR, source=SOURCE, file=file.name)
    # Several registry rows may read one column: one copy per indicator id.
    extra = [long.filter(pl.col("series") == s.series).with_columns(pl.lit(s.indicator_id).alias("indicator_id"))
             for s in specs if by_series[s.series] != s.indicator_id]
    return pl.concat([long, *extra]).with_columns(
        pl.lit(SOURCE).alias("source"), pl.lit(file.vintage).alias("vintage"),
        pl.lit(file.name).alias("file"), pl.lit(None, pl.String).alias("code"))


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    return t.parse_each(SOURCE, FILE_PATTERNS, _parse_file, files, specs)
