"""Curated `country,<value>[,year]` CSVs: the adapter kind for publishers that release
ratings only as a report (ITUC Global Rights Index, US TIP report tiers).

An adapter declares its column, the allowed spellings and their scores; this module does the
rest once: header check, value mapping, the year (column or vintage folder), one value per
country and year within a file and across files, and errors naming file, line and value.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from radar_pipeline.sources.toolkit import (
    IndicatorSpec,
    LandedFile,
    SourceError,
    conform,
    empty_observations,
)
from radar_pipeline.sources.toolkit.tables import (
    LINE,
    first_bad,
    parsed_once,
    raise_cross_file_duplicates,
    read_csv_streamed,
    spec_table,
)


@dataclass(frozen=True)
class CuratedRatings:
    source: str
    column: str                       # "rating", "tier"
    scores: dict[str, float]          # normalised spelling -> score
    normalise: Callable[[pl.Expr], pl.Expr]
    allowed: str                      # for the error message: "1, 2, 3, 4, 5, 5+"
    placed: str                       # "rated", "placed": "country X is rated twice for 2024"

    def parse_file(self, f: LandedFile) -> pl.DataFrame:
        df = read_csv_streamed(f)
        df = df.rename({c: c.strip().lower() for c in df.columns if c != LINE})
        missing = [c for c in ("country", self.column) if c not in df.columns]
        if missing:
            raise SourceError(self.source, f"missing column(s) {missing}; expected header "
                              f"country,{self.column}[,year]", file=f.name)
        default_year = int(f.vintage[:4]) if f.vintage[:4].isdigit() else None
        df = df.with_columns(
            pl.col("country").str.strip_chars().alias("country"),
            self.normalise(pl.col(self.column)).alias("value_norm"),
            (pl.col("year").str.strip_chars().replace("", None) if "year" in df.columns
             else pl.lit(None, pl.String)).alias("year_raw"),
        )
        first_bad(f, df, pl.col("country").fill_null("") == "", "country", "country", "country is empty")
        df = df.with_columns(
            pl.col("value_norm").replace_strict(self.scores, default=None, return_dtype=pl.Float64)
              .alias("value"),
            pl.coalesce(pl.col("year_raw").cast(pl.Int32, strict=False),
                        pl.when(pl.col("year_raw").is_null()).then(pl.lit(default_year, pl.Int32)))
              .alias("data_year"),
        )
        first_bad(f, df, pl.col("value").is_null(), self.column, self.column,
                  f"{self.column} must be one of {self.allowed}")
        first_bad(f, df, pl.col("data_year").is_null() & pl.col("year_raw").is_not_null(), "year",
                  "year_raw", "year is not an integer")
        first_bad(f, df, pl.col("data_year").is_null(), "year", "country",
                  f"no year given and the vintage folder name {f.vintage!r} is not a year; "
                  f"{self.column} of")
        dup = (df.with_columns(pl.col(LINE).min().over("country", "data_year").alias("__first"))
                 .filter(pl.col(LINE) != pl.col("__first")).head(1))
        if dup.height:
            raise SourceError(self.source, f"country {dup['country'].item()!r} is {self.placed} twice for "
                              f"{dup['data_year'].item()} (first on line {dup['__first'].item()})",
                              file=f.name, row=f"line {dup[LINE].item()}", field="country")
        return df.select(
            pl.lit(f.name).alias("file"), pl.format("line {}", pl.col(LINE)).alias("row_ref"),
            "country",
            pl.when(pl.col("country").str.contains(r"^[A-Z]{3}$")).then(pl.col("country")).alias("code"),
            "data_year", "value")

    def parse(self, files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
        if not files or not specs:
            return empty_observations()
        rules_key = (self.source, self.column, tuple(sorted(self.scores.items())))
        rows = pl.concat([parsed_once(f, self.parse_file, rules_key) for f in files])
        raise_cross_file_duplicates(rows, ["country", "data_year"], source=self.source)
        # Every registry row of the source reads the same value column.
        out = rows.join(spec_table(specs).select("indicator_id"), how="cross")
        return conform(out.with_columns(pl.lit(self.source).alias("source"),
                                        pl.lit(files[0].vintage).alias("vintage")))
