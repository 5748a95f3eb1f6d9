"""Generic user-supplied indicator file (METHODOLOGY §2), e.g. licensed data such as
a commercial Forced Labour Index, or ILOSTAT weekly hours.

Format (UTF-8 CSV, header required, column order free):

    iso3,indicator_id,year,value
    BGD,ilo_weekly_hours,2022,47.1

- `iso3`: ISO 3166-1 alpha-3 (or World Bank 3-letter) code; goes to `code`.
- `indicator_id`: any id of rules/indicators.csv (any source).
- `year`: integer data year; `value`: a number (empty = missing, dropped).

An unknown indicator id, an empty/malformed iso3, a non-integer year, a
non-numeric value, a value outside the indicator's plausible range
(rules/indicators.csv `valid_min`/`valid_max`: one typo such as 4700 hours a week
would otherwise rescale every other country) or the same (iso3, indicator_id,
year) twice — in one file or across files — is a SourceError naming the file(s),
line and field. A (indicator, country, year) a publisher source also gives is an
error too (`clash_with_other_sources`), naming both.
"""
from __future__ import annotations

import polars as pl

from radar_pipeline.sources.toolkit import (
    IndicatorSpec,
    LandedFile,
    SourceError,
    conform,
    empty_observations,
    load_indicator_specs,
)
from radar_pipeline.sources.toolkit.tables import (
    LINE,
    first_bad,
    parse_float,
    parsed_once,
    raise_cross_file_duplicates,
    read_csv_streamed,
)

SOURCE = "user"
FILE_PATTERNS = ("*.csv",)
USER_SUPPLIED = True  # no publisher file: read from the mirror and RADAR_USER_FILES, never downloaded
COLUMNS = ["iso3", "indicator_id", "year", "value"]


def _ranges(specs) -> pl.DataFrame:
    """indicator_id -> plausible value range (null = open) from rules/indicators.csv."""
    rows = {}
    for spec in specs:
        lo, hi = getattr(spec, "valid_min", ""), getattr(spec, "valid_max", "")
        rows.setdefault(spec.indicator_id, (float(lo) if lo else None, float(hi) if hi else None, spec.unit))
    return pl.DataFrame([(k, *v) for k, v in rows.items()], orient="row",
                        schema={"indicator_id": pl.Utf8, "_lo": pl.Float64, "_hi": pl.Float64, "_unit": pl.Utf8})


def _parse_file(f: LandedFile, known_ids: list[str], ranges: pl.DataFrame | None = None) -> pl.DataFrame:
    df = read_csv_streamed(f)
    df = df.rename({c: c.strip().lower() for c in df.columns if c != LINE})
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise SourceError(SOURCE, f"missing column(s) {missing}; expected header "
                          f"{','.join(COLUMNS)}", file=f.name)
    df = df.with_columns(pl.col(c).str.strip_chars() for c in ("iso3", "indicator_id", "year"))
    first_bad(f, df, ~pl.col("indicator_id").is_in(known_ids).fill_null(False), "indicator_id",
              "indicator_id", "unknown indicator_id (not in rules/indicators.csv)")
    first_bad(f, df, ~pl.col("iso3").str.contains(r"^[A-Za-z]{3}$").fill_null(False), "iso3", "iso3",
              "iso3 must be a 3-letter country code")
    df = df.with_columns(pl.col("year").cast(pl.Int32, strict=False).alias("data_year"))
    first_bad(f, df, pl.col("data_year").is_null(), "year", "year", "year is not an integer")
    df = parse_float(f, df, "value", "value_f", "value")
    # conform() drops non-finite values; a user typing inf/nan must hear about it, not lose the row
    first_bad(f, df, pl.col("value_f").is_not_null() & ~pl.col("value_f").is_finite(), "value", "value",
              "value is not a finite number")
    if ranges is not None:
        df = df.join(ranges, on="indicator_id", how="left", maintain_order="left")
        below = (pl.col("value_f") < pl.col("_lo")).fill_null(False)
        out = below | (pl.col("value_f") > pl.col("_hi")).fill_null(False)
        hit = df.filter(out).head(1)
        if hit.height:
            r = hit.row(0, named=True)
            raise SourceError(SOURCE, f"{r['indicator_id']} value {r['value']!r} for {r['iso3']} {r['year']} "
                              f"is outside the plausible range {r['_lo']:g} to {r['_hi']:g} ({r['_unit']}; "
                              f"rules/indicators.csv valid_min/valid_max)",
                              file=f.name, row=f"line {r[LINE]}", field="value")
    dup = (df.with_columns(pl.col(LINE).min().over("iso3", "indicator_id", "data_year").alias("__first"))
             .filter(pl.col(LINE) != pl.col("__first")).head(1))
    if dup.height:
        raise SourceError(SOURCE, f"{dup['iso3'].item()} {dup['indicator_id'].item()} "
                          f"{dup['data_year'].item()} given twice (first on line {dup['__first'].item()})",
                          file=f.name, row=f"line {dup[LINE].item()}", field="iso3")
    return df.select(
        pl.lit(SOURCE).alias("source"), "indicator_id", pl.lit(f.vintage).alias("vintage"),
        pl.lit(f.name).alias("file"), pl.format("line {}", pl.col(LINE)).alias("row_ref"),
        pl.lit(None, pl.String).alias("country"), pl.col("iso3").alias("code"), "data_year",
        pl.col("value_f").alias("value"))


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    """`specs` is not used to select rows: a user file may carry any registry indicator."""
    if not files:
        return empty_observations()
    all_specs = load_indicator_specs()
    known_ids = sorted({s.indicator_id for s in all_specs})
    ranges = _ranges(all_specs)
    rules_key = (tuple(known_ids), tuple(ranges.rows()))  # parsed again only when file or rules change
    rows = pl.concat([parsed_once(f, lambda f: _parse_file(f, known_ids, ranges), rules_key) for f in files])
    raise_cross_file_duplicates(rows, ["indicator_id", "code", "data_year"], source=SOURCE)
    return conform(rows)


def clash_with_other_sources(con, edition: int, source: str, observations: pl.DataFrame) -> str | None:
    """A message when `observations` give an (indicator, country, year) that another source
    already stored for this edition (the table's key would refuse it with a raw error)."""
    obs = observations.select("indicator_id", "iso3", "data_year", "file", "row_ref")  # noqa: F841 (SQL)
    hit = con.execute("""select n.indicator_id, n.iso3, n.data_year, n.file, n.row_ref, o.source, o.file, o.row_ref
                         from obs n join indicator_observations o using (indicator_id, iso3, data_year)
                         where o.edition = $e and o.source <> $s limit 1""", {"e": edition, "s": source}).fetchall()
    if not hit:
        return None
    ind, iso3, year, file, ref, other, ofile, oref = hit[0]
    return (f"{ind} {iso3} {year} in {file} ({ref}) is also given by source {other} ({ofile} {oref or ''}); "
            f"an indicator value for a country and year comes from one source: remove one of them")
