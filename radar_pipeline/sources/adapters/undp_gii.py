"""UNDP HDRO — Gender Inequality Index time-series table (HDR data-center CSV export).

A vintage folder may instead (or also) hold the HDR composite-indices complete
time series (`iso3,country,...,gii_1990,...`); such files are read by
`undp_hdr.parse_file` (see that module). The rest of this docstring describes
the older per-index export.

Layout: a few preamble lines (title "Gender Inequality Index (GII)", dimension,
definition, source), then the header line `HDI Rank, Country, 1995, , 2000, ...`
located by content; each year column is followed by an unnamed column holding
footnote letters (ignored); `..` = missing; country names carry a leading
space (stripped). Names only, no code.

Aggregates and footnotes: in these exports every country row carries its HDI
rank in the first column (a whole number, or ".." for a country the HDR does
not rank), while the aggregate rows the export appends (human-development
groups, developing countries, regions such as "Arab States", "OECD", "World")
have an EMPTY rank cell, and trailing footnote/notes rows hold text (e.g.
"a. ...", "Note: ...") or nothing there. Rule: keep a row only when its HDI
Rank cell is a whole number or "..", and its Country cell is non-empty.
"""
from __future__ import annotations

import re

import polars as pl

from radar_pipeline.sources.adapters import undp_hdr
from radar_pipeline.sources.toolkit import IndicatorSpec, LandedFile, SourceError, check_content
from radar_pipeline.sources.toolkit import tables as t

SOURCE = "undp_gii"
FILE_PATTERNS = ("*.csv",)

RANK, COUNTRY = "HDI Rank", "Country"


def _parse_file(file: LandedFile, specs: list[IndicatorSpec]) -> pl.DataFrame:
    # The HDR data centre now serves the composite-indices time series (iso3, gii_<year>)
    # instead of this per-index export; a vintage folder may hold either.
    if undp_hdr.is_composite(file):
        return undp_hdr.parse_file(file, specs)
    data = check_content(file, "csv")
    df = t.read_csv_raw(file, data, [RANK, COUNTRY])
    where = "the GII table header"
    cols = t.require_columns(df, [RANK, COUNTRY], source=SOURCE, file=file.name, where=where)
    # The table is one index: the spec's series (e.g. "GII") must be what the
    # title announces, so a different HDR table saved under this name is refused.
    preamble = data.decode("utf-8-sig")[:2000]
    for spec in specs:
        if not re.search(rf"\({re.escape(spec.series)}\)|\b{re.escape(spec.series)}\b", preamble):
            raise SourceError(SOURCE, f"title lines do not name the '{spec.series}' table "
                              "(expected e.g. 'Gender Inequality Index (GII)')", file=file.name,
                              field=spec.series)
    year_cols = {c: int(c) for c in df.columns if re.fullmatch(r"\d{4}", c)}
    if not year_cols:
        raise SourceError(SOURCE, f"no year columns (e.g. '2019') in {where}; columns found: "
                          f"{[c for c in df.columns if not c.startswith('__')]}", file=file.name,
                          field="<year>")
    rank = pl.col(cols[RANK]).str.strip_chars()
    countries = (df.filter(rank.str.contains(r"^(\d+|\.\.)$").fill_null(False)
                           & pl.col(cols[COUNTRY]).str.strip_chars().str.len_chars().gt(0)
                           .fill_null(False))
                   .select(pl.col(cols[COUNTRY]).str.strip_chars().alias("country"),
                           pl.col(t.ROW), *year_cols)
                   .pipe(t.year_columns_to_long, year_cols, ["country", t.ROW]))
    countries = t.parse_values(countries, "raw_value", source=SOURCE, file=file.name,
                               field_col="column")
    return pl.concat([countries.with_columns(pl.lit(s.indicator_id).alias("indicator_id"))
                      for s in specs]).with_columns(
        pl.lit(SOURCE).alias("source"), pl.lit(file.vintage).alias("vintage"),
        pl.lit(file.name).alias("file"), pl.lit(None, pl.String).alias("code"))


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    return t.parse_each(SOURCE, FILE_PATTERNS, _parse_file, files, specs)
