"""Notre Dame Global Adaptation Initiative — country index download.

The download holds one wide CSV per measure (gain.csv, readiness.csv,
vulnerability.csv, ...): `ISO3`, `Name`, one column per year (1995..). The
registry's series names the file: series `gain` = gain.csv. Only files named
by the specs are read. Codes are ND-GAIN's ISO3 as written.
"""
from __future__ import annotations

import re

import polars as pl

from radar_pipeline.sources.toolkit import (
    IndicatorSpec,
    LandedFile,
    SourceError,
    check_content,
    conform,
    empty_observations,
)
from radar_pipeline.sources.toolkit import tables as t

SOURCE = "nd_gain"
FILE_PATTERNS = ("*.csv",)

ISO3, NAME = "ISO3", "Name"


def _parse_file(file: LandedFile, indicator_ids: list[str]) -> pl.DataFrame:
    data = check_content(file, "csv")
    df = t.read_csv_raw(file, data, [ISO3, NAME])
    cols = t.require_columns(df, [ISO3, NAME], source=SOURCE, file=file.name, where="the header")
    year_cols = {c: int(c) for c in df.columns if re.fullmatch(r"\d{4}", c)}
    if not year_cols:
        raise SourceError(SOURCE, "no year columns (e.g. '2019') in the header; columns found: "
                          f"{[c for c in df.columns if not c.startswith('__')]}", file=file.name,
                          field="<year>")
    long = (df.select(pl.col(cols[NAME]).str.strip_chars().alias("country"),
                      pl.col(cols[ISO3]).str.strip_chars().alias("code"), pl.col(t.ROW),
                      *year_cols)
              .filter(pl.col("country").is_not_null() | pl.col("code").is_not_null())
              .pipe(t.year_columns_to_long, year_cols, ["country", "code", t.ROW]))
    long = t.parse_values(long, "raw_value", source=SOURCE, file=file.name, field_col="column")
    return pl.concat([long.with_columns(pl.lit(i).alias("indicator_id")) for i in indicator_ids]
                     ).with_columns(pl.lit(SOURCE).alias("source"),
                                    pl.lit(file.vintage).alias("vintage"),
                                    pl.lit(file.name).alias("file"))


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    if not specs:
        return empty_observations()
    by_stem = {f.path.stem.strip().lower(): f for f in files}
    out = []
    for series in dict.fromkeys(s.series for s in specs):
        file = by_stem.get(series.strip().lower())
        if file is None:
            raise SourceError(SOURCE, f"registry series '{series}' needs file '{series}.csv' "
                              f"but the vintage folder holds {sorted(f.name for f in files)}",
                              field=series)
        out.append(_parse_file(file, [s.indicator_id for s in specs if s.series == series]))
    return conform(pl.concat(out, how="diagonal_relaxed"))
