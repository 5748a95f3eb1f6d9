"""ITUC Global Rights Index — curated CSV supplied by the user.

ITUC publishes its ratings only in a PDF report and on
https://www.globalrightsindex.org/, so the pipeline reads a small curated CSV
of the published ratings, one per index year (vintage folder). It is looked up
in two places, both read (never downloaded):
- the sources mirror, `<RADAR_SOURCES_MIRROR>/ituc/<year>/*.csv` — e.g. the
  shared mirror's `ituc/2025/ituc_global_rights_index_2025.csv` (150 countries
  of the 2025 report, names as ITUC writes them, provenance in its PROVENANCE.md);
- the user files, `<RADAR_USER_FILES>/ituc/<year>/*.csv`.

Format (UTF-8, comma separated, header required, column order free, header
names case-insensitive):

    country,rating[,year]
    Denmark,1
    Bangladesh,5
    Myanmar,5+
    SYR,5 +

- `country`: a country name as ITUC writes it, or an ISO 3166-1 alpha-3 code.
  The name goes to `country`; a value of exactly three upper-case letters is
  also put in `code`. Names are mapped to ISO3 centrally, not here: every name
  of the 2025 file maps through country_converter without an override
  (`Türkiye`, `Palestine` -> PSE, `Hong Kong` -> HKG, `Taiwan` -> TWN). `Congo`
  maps to COG (the Republic of the Congo, as the ISO name reads); the curated
  file does not say which Congo the report meant — write `Democratic Republic
  of the Congo` (or COD) when the rating is the DRC's.
- `rating`: 1, 2, 3, 4, 5 or 5+ ("5 +" accepted). 5+ ("no guarantee of rights
  due to the breakdown of the rule of law") counts as 6.0 (METHODOLOGY §2).
- `year` (optional): the index year the rating describes; when the column is
  absent or the cell empty, the vintage folder name (e.g. "2024") is used.

Any other rating, an empty country, a non-integer year or the same country
twice for one year is a SourceError naming the line and the value.
"""
from __future__ import annotations

import polars as pl

from radar_pipeline.sources._csv_text import (LINE, decode_text, first_bad, read_csv_text,
                                               spec_table)
from radar_pipeline.sources.base import (IndicatorSpec, LandedFile, SourceError, check_content,
                                         conform, empty_observations)

SOURCE = "ituc"
FILE_PATTERNS = ("*.csv",)

RATINGS = {"1": 1.0, "2": 2.0, "3": 3.0, "4": 4.0, "5": 5.0, "5+": 6.0}


def _parse_file(f: LandedFile) -> pl.DataFrame:
    df = read_csv_text(f, decode_text(f, check_content(f, "csv")))
    df = df.rename({c: c.strip().lower() for c in df.columns if c != LINE})
    missing = [c for c in ("country", "rating") if c not in df.columns]
    if missing:
        raise SourceError(SOURCE, f"missing column(s) {missing}; expected header country,rating[,year]",
                          file=f.name)
    has_year = "year" in df.columns
    default_year = int(f.vintage) if f.vintage.isdigit() else None
    df = df.with_columns(
        pl.col("country").str.strip_chars().alias("country"),
        pl.col("rating").str.replace_all(r"\s+", "").alias("rating_norm"),
        (pl.col("year").str.strip_chars().replace("", None) if has_year
         else pl.lit(None, pl.String)).alias("year_raw"),
    )
    first_bad(f, df, pl.col("country").fill_null("") == "", "country", "country", "country is empty")
    df = df.with_columns(
        pl.col("rating_norm").replace_strict(RATINGS, default=None, return_dtype=pl.Float64).alias("value"),
        pl.coalesce(pl.col("year_raw").cast(pl.Int32, strict=False),
                    pl.when(pl.col("year_raw").is_null()).then(pl.lit(default_year, pl.Int32)))
          .alias("data_year"),
    )
    first_bad(f, df, pl.col("value").is_null(), "rating", "rating",
              "rating must be one of 1, 2, 3, 4, 5, 5+")
    first_bad(f, df, pl.col("data_year").is_null() & pl.col("year_raw").is_not_null(), "year",
              "year_raw", "year is not an integer")
    first_bad(f, df, pl.col("data_year").is_null(), "year", "country",
              f"no year given and the vintage folder name {f.vintage!r} is not a year; rating of")
    dup = (df.with_columns(pl.col(LINE).min().over("country", "data_year").alias("__first"))
             .filter(pl.col(LINE) != pl.col("__first")).head(1))
    if dup.height:
        raise SourceError(SOURCE, f"country {dup['country'].item()!r} is rated twice for "
                          f"{dup['data_year'].item()} (first on line {dup['__first'].item()})",
                          file=f.name, row=f"line {dup[LINE].item()}", field="country")
    return df.select(
        pl.lit(f.name).alias("file"), pl.format("line {}", pl.col(LINE)).alias("row_ref"),
        "country",
        pl.when(pl.col("country").str.contains(r"^[A-Z]{3}$")).then(pl.col("country")).alias("code"),
        "data_year", "value")


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    if not files or not specs:
        return empty_observations()
    rows = pl.concat([_parse_file(f) for f in files])
    from radar_pipeline.sources.user import raise_cross_file_duplicates

    raise_cross_file_duplicates(rows, ["country", "data_year"], source=SOURCE)
    # Every registry row of this source reads the rating (series "rating").
    out = rows.join(spec_table(specs).select("indicator_id"), how="cross")
    return conform(out.with_columns(pl.lit(SOURCE).alias("source"),
                                    pl.lit(files[0].vintage).alias("vintage")))
