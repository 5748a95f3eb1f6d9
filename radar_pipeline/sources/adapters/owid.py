"""Our World in Data — grapher CSVs, one generic layout for any series
(`https://ourworldindata.org/grapher/<chart>.csv?v=1&csvType=full&useColumnShortNames=false`).

Layout: `Entity,Code,Year,<series title>` (UTF-8, standard CSV quoting; an entity name holding
a comma is quoted). `Code` is ISO3 (-> `code`), `Entity` the name (-> `country`), `Year` the
data year. Rows with an empty `Code` (regions such as "Europe (UN)", income groups) or an
`OWID_` code (`OWID_WRL` World, `OWID_EU27` ...) are aggregates or sub-national areas and are
dropped here. One exception: OWID codes Kosovo — an economy of the universe (METHODOLOGY §1)
that has no ISO 3166 code — as `OWID_KOS`; that row is kept with its name only, so the resolver
maps "Kosovo" like any other name.

A registry row names the file and the column: `series` = `<file name>|<column title>`, e.g.
`annual-working-hours-per-worker.csv|Working hours per worker` (file name and title matched
case-insensitively, the title whitespace-normalised). OWID releases one chart per file, and
the files of one vintage folder differ: a folder without the named file gives no rows for that
registry row (another vintage folder carries it); a folder holding the file without the column
is a SourceError naming the columns found (OWID renamed the series).
"""
from __future__ import annotations

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

SOURCE = "owid"
FILE_PATTERNS = ("*.csv",)

ENTITY, CODE, YEAR = "Entity", "Code", "Year"
AGGREGATE_PREFIX = "OWID_"
# OWID codes that are economies of the universe, not aggregates: kept by name (see docstring).
NAMED_ECONOMIES = {"OWID_KOS"}


def split_series(spec: IndicatorSpec) -> tuple[str, str]:
    """`<file name>|<column title>` of a registry row."""
    file_name, sep, column = spec.series.partition("|")
    if not sep or not file_name.strip() or not column.strip():
        raise SourceError(SOURCE, f"registry series {spec.series!r} of {spec.indicator_id} must read "
                          "'<file name>|<column title>', e.g. "
                          "'annual-working-hours-per-worker.csv|Working hours per worker'", field="series")
    return file_name.strip(), column.strip()


def _parse_file(file: LandedFile, columns: dict[str, list[str]]) -> pl.DataFrame:
    """`columns`: column title -> indicator ids reading it."""
    df = t.read_csv_text(file, t.decode_text(file, check_content(file, "csv")))
    cols = t.require_columns(df, [ENTITY, CODE, YEAR, *columns], source=SOURCE, file=file.name,
                             where=f"the header of {file.name}")
    code = pl.col(cols[CODE]).str.strip_chars().replace("", None)
    df = (df.with_columns(pl.col(cols[ENTITY]).str.strip_chars().alias("country"), code.alias("code"),
                          pl.col(cols[YEAR]).str.strip_chars().alias("__year"))
            .filter(code.is_not_null()
                    & (~code.str.starts_with(AGGREGATE_PREFIX) | code.is_in(list(NAMED_ECONOMIES))))
            .with_columns(pl.when(pl.col("code").str.starts_with(AGGREGATE_PREFIX))
                            .then(pl.lit(None, pl.String)).otherwise(pl.col("code")).alias("code"),
                          pl.col("__year").cast(pl.Int32, strict=False).alias("data_year")))
    t.first_bad(file, df, pl.col("data_year").is_null(), YEAR, "__year", "year is not an integer")
    t.first_bad(file, df, pl.col("country").fill_null("") == "", ENTITY, "code", "entity is empty for code")
    key = pl.coalesce("code", "country")
    dup = (df.with_columns(pl.col(t.LINE).min().over(key, "data_year").alias("__first"))
             .filter(pl.col(t.LINE) != pl.col("__first")).head(1))
    if dup.height:
        raise SourceError(SOURCE, f"{dup['country'].item()!r} has two rows for {dup['data_year'].item()} "
                          f"(first on line {dup['__first'].item()})", file=file.name,
                          row=f"line {dup[t.LINE].item()}", field=YEAR)
    out = []
    for title, indicator_ids in columns.items():
        long = t.parse_float(file, df, cols[title], "value", cols[title]).filter(pl.col("value").is_not_null())
        long = long.select("country", "code", "data_year", "value",
                           pl.format("line {}, column '{}'", pl.col(t.LINE), pl.lit(" ".join(cols[title].split())))
                           .alias("row_ref"))
        out.extend(long.with_columns(pl.lit(i).alias("indicator_id")) for i in indicator_ids)
    return pl.concat(out).with_columns(pl.lit(SOURCE).alias("source"), pl.lit(file.vintage).alias("vintage"),
                                       pl.lit(file.name).alias("file"))


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    if not specs:
        return empty_observations()
    if not files:
        raise SourceError(SOURCE, f"no file matching {FILE_PATTERNS} in the vintage folder")
    by_name = {f.name.casefold(): f for f in files}
    wanted: dict[str, dict[str, list[str]]] = {}   # file name -> column title -> indicator ids
    for spec in specs:
        file_name, column = split_series(spec)
        if file_name.casefold() in by_name:  # else: this vintage folder does not carry the chart
            wanted.setdefault(file_name.casefold(), {}).setdefault(column, []).append(spec.indicator_id)
    if not wanted:
        return empty_observations()
    return conform(pl.concat([_parse_file(by_name[n], cols) for n, cols in wanted.items()],
                             how="diagonal_relaxed"))
