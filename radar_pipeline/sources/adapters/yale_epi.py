"""Yale/Columbia Environmental Performance Index — results CSV (one per release).

Columns differ between releases (2020 has APE/CCH, 2022 ACD/PCC, 2024 APO/PCC),
so the registry gives, per vintage, which `XXX.new` column feeds an indicator.
A registry column missing from the file is an error naming column and vintage.
The `.new` scores describe the release, so data_year = the release year
(the vintage folder, e.g. "2024"). code = `iso` (ISO3), country = `country`.
"""
from __future__ import annotations

import re

import polars as pl

from radar_pipeline.sources.toolkit import IndicatorSpec, LandedFile, SourceError, check_content
from radar_pipeline.sources.toolkit import tables as t

SOURCE = "yale_epi"
# The publisher also releases e.g. epi2024weights.csv next to the results file.
FILE_PATTERNS = ("*results*.csv",)


def _release_year(file: LandedFile) -> int:
    m = re.match(r"(\d{4})", file.vintage)
    if not m:
        raise SourceError(SOURCE, f"vintage folder '{file.vintage}' does not start with the "
                          "EPI release year", file=file.name)
    return int(m.group(1))


def _parse_file(file: LandedFile, specs: list[IndicatorSpec]) -> pl.DataFrame:
    data = check_content(file, "csv")
    year = _release_year(file)
    df = t.read_csv_raw(file, data, ["iso", "country"])
    where = f"the EPI {file.vintage} file"
    series = list(dict.fromkeys(s.series for s in specs))
    cols = t.require_columns(df, ["iso", "country", *series], source=SOURCE, file=file.name,
                             where=where)
    by_series = {s.series: s.indicator_id for s in specs}
    long = (df.select(pl.col(cols["country"]).str.strip_chars().alias("country"),
                      pl.col(cols["iso"]).str.strip_chars().alias("code"),
                      pl.col(t.ROW),
                      *[pl.col(cols[s]).alias(s) for s in series])
              .unpivot(on=series, index=["country", "code", t.ROW], variable_name="series",
                       value_name="raw_value")
              .with_columns(
                  pl.format("line {}, column '{}'", pl.col(t.ROW), pl.col("series")).alias("row_ref"),
                  pl.col("series").replace_strict(by_series, return_dtype=pl.String)
                  .alias("indicator_id")))
    long = t.parse_values(long, "raw_value", source=SOURCE, file=file.name, field_col="series")
    return long.with_columns(pl.lit(SOURCE).alias("source"), pl.lit(file.vintage).alias("vintage"),
                             pl.lit(file.name).alias("file"), pl.lit(year).alias("data_year"))


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    return t.parse_each(SOURCE, FILE_PATTERNS, _parse_file, files, specs)
