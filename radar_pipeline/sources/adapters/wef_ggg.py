"""World Economic Forum — Global Gender Gap Index, curated CSV supplied by the user.

WEF publishes the Global Gender Gap Report as a PDF only, so (like ITUC) the pipeline reads a
curated CSV of the published country scores, one per report (vintage folder, e.g. `2023-06`
for the report released June 2023). It is looked up in two places, both read, never
downloaded: the sources mirror (`<RADAR_SOURCES_MIRROR>/wef_ggg/<vintage>/*.csv`, e.g. the
shared mirror's `wef_ggg/2023-06/gggi_2023_tidyindex.csv`: 146 countries extracted from the
2023 report PDF, provenance in its PROVENANCE.md) and the user files
(`<RADAR_USER_FILES>/wef_ggg/<vintage>/*.csv`).

Format (UTF-8, comma separated, header required, column order free, header names
case-insensitive, other columns ignored):

    country,economic_participation_and_opportunity[,year]
    Iceland,0.796
    Iran (Islamic Republic of),0.344

- `country`: the name as the WEF report writes it (`Iran (Islamic Republic of)`, `Türkiye`,
  `Congo, Democratic Republic of the`) or an ISO 3166-1 alpha-3 code. The name goes to
  `country`; a value of exactly three upper-case letters is also put in `code`. Names are
  mapped to ISO3 centrally (country_converter, rules/country_overrides.csv), not here.
- the value column is the registry row's `series` (the subindex `economic_participation_and_
  opportunity`, a score 0-1 where 1 = parity); empty = not rated, no row. A value outside
  the registry row's `valid_min`..`valid_max` (e.g. a score typed as a percentage) is an
  error: a hand-curated file must not rescale every other country.
- `year` (optional): the year the score describes; when the column is absent or the cell
  empty, the year of the vintage folder (`2023-06` -> 2023: the 2023 report's scores).

A missing column, an empty country, a non-number, a non-integer year, or the same country
twice for one year (in one file or across files) is a SourceError naming the line and the
value.
"""
from __future__ import annotations

import polars as pl

from radar_pipeline.sources.toolkit import (
    IndicatorSpec,
    LandedFile,
    SourceError,
    conform,
    empty_observations,
)
from radar_pipeline.sources.toolkit import tables as t
from radar_pipeline.sources.toolkit.tables import LINE

SOURCE = "wef_ggg"
FILE_PATTERNS = ("*.csv",)
USER_SUPPLIED = True  # no publisher data file (PDF report): read from the mirror and RADAR_USER_FILES

COUNTRY, YEAR = "country", "year"


def _range(spec: IndicatorSpec) -> tuple[float | None, float | None]:
    return (float(spec.valid_min) if spec.valid_min else None,
            float(spec.valid_max) if spec.valid_max else None)


def _parse_file(f: LandedFile, specs: list[IndicatorSpec]) -> pl.DataFrame:
    df = t.read_csv_streamed(f)  # a user file: sniffed and parsed in blocks
    df = df.rename({c: c.strip().lower() for c in df.columns if c != LINE})
    series = list(dict.fromkeys(s.series.strip().lower() for s in specs))
    missing = [c for c in (COUNTRY, *series) if c not in df.columns]
    if missing:
        raise SourceError(SOURCE, f"missing column(s) {missing}; expected header "
                          f"{COUNTRY},{','.join(series)}[,{YEAR}]; columns found: "
                          f"{[c for c in df.columns if c != LINE]}", file=f.name, field=missing[0])
    default_year = int(f.vintage[:4]) if f.vintage[:4].isdigit() else None
    df = df.with_columns(
        pl.col(COUNTRY).str.strip_chars().alias("country"),
        (pl.col(YEAR).str.strip_chars().replace("", None) if YEAR in df.columns
         else pl.lit(None, pl.String)).alias("year_raw"))
    t.first_bad(f, df, pl.col("country").fill_null("") == "", COUNTRY, COUNTRY, "country is empty")
    df = df.with_columns(pl.coalesce(pl.col("year_raw").cast(pl.Int32, strict=False),
                                     pl.when(pl.col("year_raw").is_null())
                                     .then(pl.lit(default_year, pl.Int32))).alias("data_year"))
    t.first_bad(f, df, pl.col("data_year").is_null() & pl.col("year_raw").is_not_null(), YEAR, "year_raw",
                "year is not an integer")
    t.first_bad(f, df, pl.col("data_year").is_null(), YEAR, "country",
                f"no year given and the vintage folder name {f.vintage!r} does not start with a year; "
                "score of")
    dup = (df.with_columns(pl.col(LINE).min().over("country", "data_year").alias("__first"))
             .filter(pl.col(LINE) != pl.col("__first")).head(1))
    if dup.height:
        raise SourceError(SOURCE, f"country {dup['country'].item()!r} is scored twice for "
                          f"{dup['data_year'].item()} (first on line {dup['__first'].item()})",
                          file=f.name, row=f"line {dup[LINE].item()}", field=COUNTRY)
    out = []
    for spec in specs:
        col = spec.series.strip().lower()
        rows = t.parse_float(f, df, col, "value", col).filter(pl.col("value").is_not_null())
        t.first_bad(f, rows, ~pl.col("value").is_finite(), col, col, "value is not a finite number")
        lo, hi = _range(spec)
        out_of_range = pl.lit(False)
        if lo is not None:
            out_of_range = out_of_range | (pl.col("value") < lo)
        if hi is not None:
            out_of_range = out_of_range | (pl.col("value") > hi)
        t.first_bad(f, rows, out_of_range, col, col,
                    f"{spec.indicator_id} score outside its range {spec.valid_min or '-inf'} to "
                    f"{spec.valid_max or 'inf'} ({spec.unit}; rules/indicators.csv valid_min/valid_max)")
        out.append(rows.select(
            pl.lit(spec.indicator_id).alias("indicator_id"), pl.lit(f.name).alias("file"),
            pl.format("line {}, column '{}'", pl.col(LINE), pl.lit(col)).alias("row_ref"), "country",
            pl.when(pl.col("country").str.contains(r"^[A-Z]{3}$")).then(pl.col("country")).alias("code"),
            "data_year", "value"))
    return pl.concat(out)


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    if not files or not specs:
        return empty_observations()
    rows = pl.concat([_parse_file(f, specs) for f in files])
    t.raise_cross_file_duplicates(rows, ["indicator_id", "country", "data_year"], source=SOURCE)
    return conform(rows.with_columns(pl.lit(SOURCE).alias("source"),
                                     pl.lit(files[0].vintage).alias("vintage")))
