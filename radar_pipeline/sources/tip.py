"""US State Department Trafficking in Persons (TIP) report tiers — curated CSV supplied by the user.

The TIP report places every country on Tier 1, Tier 2, the Tier 2 Watch List or
Tier 3 (plus "Special Case" countries it does not rank). It is published as
text (https://www.state.gov/trafficking-in-persons-report/), so — like ITUC —
the pipeline reads a small curated CSV of the published placements, one per
report year (vintage folder), from two places, both read and never downloaded:
- the sources mirror, `<RADAR_SOURCES_MIRROR>/tip/<year>/*.csv`;
- the user files, `<RADAR_USER_FILES>/tip/<year>/*.csv`.

Format (UTF-8, comma separated, header required, column order free, header
names case-insensitive):

    country,tier[,year]
    Denmark,1
    Brazil,2
    Thailand,2WL
    NGA,2 WL
    Eritrea,3

- `country`: a country name as the report writes it, or an ISO 3166-1 alpha-3
  code; names are mapped to ISO3 centrally (sources.countries), as for every
  source; a three-upper-case-letter value is also taken as a code.
- `tier`: `1`, `2`, `2WL` (Tier 2 Watch List; `2 WL`, `Tier 2 Watch List`
  accepted) or `3`, also written `Tier 1` ... Scored 1, 2, 3, 4 (higher
  riskier, METHODOLOGY §2 forced-labour proxy). A "Special Case" country has
  no tier: leave it out of the file.
- `year` (optional): the report year; when the column is absent or the cell
  empty, the vintage folder name (e.g. "2024") is used. The report of year Y
  covers April Y-1 to March Y and is released in June Y, so the folder is
  labelled by its release.

Any other tier, an empty country, a non-integer year or the same country twice
for one year is a SourceError naming the file, line and value.
"""
from __future__ import annotations

import polars as pl

from radar_pipeline.sources._csv_text import LINE, decode_text, first_bad, read_csv_text, spec_table
from radar_pipeline.sources.base import (IndicatorSpec, LandedFile, SourceError, check_content, conform,
                                         empty_observations)

SOURCE = "tip"
FILE_PATTERNS = ("*.csv",)

# METHODOLOGY §2: Tier 1 = 1, Tier 2 = 2, Tier 2 Watch List = 3, Tier 3 = 4.
TIERS = {"1": 1.0, "2": 2.0, "2WL": 3.0, "2WATCHLIST": 3.0, "3": 4.0}


def _normalised_tier() -> pl.Expr:
    # "Tier 2 Watch List", "2 WL", "2wl" -> "2WL" / "2WATCHLIST"
    return (pl.col("tier").str.to_uppercase().str.replace_all(r"\s+", "")
              .str.replace(r"^TIER", ""))


def _parse_file(f: LandedFile) -> pl.DataFrame:
    df = read_csv_text(f, decode_text(f, check_content(f, "csv")))
    df = df.rename({c: c.strip().lower() for c in df.columns if c != LINE})
    missing = [c for c in ("country", "tier") if c not in df.columns]
    if missing:
        raise SourceError(SOURCE, f"missing column(s) {missing}; expected header country,tier[,year]",
                          file=f.name)
    has_year = "year" in df.columns
    default_year = int(f.vintage[:4]) if f.vintage[:4].isdigit() else None
    df = df.with_columns(
        pl.col("country").str.strip_chars().alias("country"),
        _normalised_tier().alias("tier_norm"),
        (pl.col("year").str.strip_chars().replace("", None) if has_year
         else pl.lit(None, pl.String)).alias("year_raw"),
    )
    first_bad(f, df, pl.col("country").fill_null("") == "", "country", "country", "country is empty")
    df = df.with_columns(
        pl.col("tier_norm").replace_strict(TIERS, default=None, return_dtype=pl.Float64).alias("value"),
        pl.coalesce(pl.col("year_raw").cast(pl.Int32, strict=False),
                    pl.when(pl.col("year_raw").is_null()).then(pl.lit(default_year, pl.Int32)))
          .alias("data_year"),
    )
    first_bad(f, df, pl.col("value").is_null(), "tier", "tier", "tier must be one of 1, 2, 2WL, 3")
    first_bad(f, df, pl.col("data_year").is_null() & pl.col("year_raw").is_not_null(), "year",
              "year_raw", "year is not an integer")
    first_bad(f, df, pl.col("data_year").is_null(), "year", "country",
              f"no year given and the vintage folder name {f.vintage!r} is not a year; tier of")
    dup = (df.with_columns(pl.col(LINE).min().over("country", "data_year").alias("__first"))
             .filter(pl.col(LINE) != pl.col("__first")).head(1))
    if dup.height:
        raise SourceError(SOURCE, f"country {dup['country'].item()!r} is placed twice for "
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
    # Every registry row of this source reads the tier (series "tier").
    out = rows.join(spec_table(specs).select("indicator_id"), how="cross")
    return conform(out.with_columns(pl.lit(SOURCE).alias("source"),
                                    pl.lit(files[0].vintage).alias("vintage")))
