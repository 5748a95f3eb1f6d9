"""UNDP HDRO — composite indices complete time series (the HDR data-centre CSV that
replaced the per-index exports; e.g. `HDR23-24_Composite_indices_complete_time_series.csv`,
`HDR25_Composite_indices_complete_time_series.csv`).

Layout: one row per country, header `iso3,country,hdicode,region,hdi_rank_2022,
hdi_1990,...,hdi_2022,...,gii_rank_2022,gii_1990,...,gii_2022,...` — one column
per index x year, named `<index>_<year>` in lower case (`<index>_rank_<year>`
columns are ranks and ignored). Empty cell = missing. Countries carry ISO3 in
`iso3`; the eleven aggregate rows the file appends carry `ZZ` pseudo-codes
(`ZZA.VHHD` ... HDI groups, `ZZE.AS` ... regions, `ZZK.WORLD`) and are dropped
here: they are not countries and have no ISO code to report against.

Encoding: UNDP serves this file in Windows-1252 (Latin-1), not UTF-8 (e.g.
`C\xf4te d'Ivoire`). It is read as UTF-8 when it decodes as UTF-8, else as
Windows-1252; only the informational `country` column is affected — the rows
are keyed by `iso3`.

This is not a source of its own: the files live in the `undp_gii` vintage
folders beside the older GII-only export, and `undp_gii.parse` hands a file to
`parse_file` here when its header is this layout. One source for one index
keeps the newest vintage winning per country and year (no GII counted twice).
The registry's `series` (`GII`) names the column prefix (`gii_<year>`).
"""
from __future__ import annotations

import re

import polars as pl

from radar_pipeline.sources.toolkit import IndicatorSpec, LandedFile, SourceError
from radar_pipeline.sources.toolkit import tables as t
from radar_pipeline.sources.toolkit.fetch import body_hint
from radar_pipeline.sources.toolkit.tables import LINE, read_csv_text

KEY_COLUMNS = ("iso3", "country")


def is_composite(file: LandedFile) -> bool:
    """True when the file's first line is the composite time-series header (`iso3,country,...`)."""
    with open(file.path, "rb") as fh:
        head = fh.read(4096)
    first = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].decode("latin-1").replace('"', "")
    cols = [c.strip().lower() for c in first.split(",")]
    return cols[:2] == list(KEY_COLUMNS)


def _text(file: LandedFile) -> str:
    data = file.path.read_bytes()
    hint = body_hint(data)
    if hint:
        raise SourceError(file.source, f"unusable file{hint}", file=file.name)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # The publisher's own encoding (see module docstring); refuse what is not text at all.
        if b"\x00" in data[:4096]:
            raise SourceError(file.source, "binary content (NUL bytes), not a CSV", file=file.name) from None
        return data.decode("cp1252", errors="replace")


def parse_file(file: LandedFile, specs: list[IndicatorSpec]) -> pl.DataFrame:
    df = read_csv_text(file, _text(file))
    df = df.rename({c: c.strip().lower() for c in df.columns if c != LINE})
    missing = [c for c in KEY_COLUMNS if c not in df.columns]
    if missing:
        raise SourceError(file.source, f"missing column(s) {missing} in the composite indices table",
                          file=file.name, field=missing[0])
    frames = []
    for spec in specs:
        prefix = spec.series.strip().lower()
        years = {c: int(c.rsplit("_", 1)[1]) for c in df.columns
                 if re.fullmatch(rf"{re.escape(prefix)}_\d{{4}}", c)}
        if not years:
            raise SourceError(file.source, f"no '{prefix}_<year>' columns for series {spec.series!r} "
                              f"(e.g. '{prefix}_2022'); index columns found: "
                              f"{sorted({c.rsplit('_', 1)[0] for c in df.columns if re.search(r'_[0-9]{4}$', c)})}",
                              file=file.name, field=f"{prefix}_<year>")
        long = (df.filter(~pl.col("iso3").str.strip_chars().str.starts_with("ZZ").fill_null(False))
                  .select(pl.col("iso3").str.strip_chars().alias("code"),
                          pl.col("country").str.strip_chars().alias("country"), pl.col(LINE), *years)
                  .unpivot(on=list(years), index=["code", "country", LINE], variable_name="column",
                           value_name="raw_value")
                  .with_columns(
                      pl.format("line {}, column '{}'", pl.col(LINE), pl.col("column")).alias("row_ref"),
                      pl.col("column").replace_strict(years, return_dtype=pl.Int32).alias("data_year")))
        bad = long.filter(pl.col("code").fill_null("") == "").head(1)
        if bad.height:
            raise SourceError(file.source, "iso3 is empty", file=file.name, row=f"line {bad[LINE][0]}",
                              field="iso3")
        long = t.parse_values(long, "raw_value", source=file.source, file=file.name, field_col="column")
        frames.append(long.with_columns(pl.lit(spec.indicator_id).alias("indicator_id")))
    return pl.concat(frames).with_columns(
        pl.lit(file.source).alias("source"), pl.lit(file.vintage).alias("vintage"),
        pl.lit(file.name).alias("file"))

