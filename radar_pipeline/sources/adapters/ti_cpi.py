"""Transparency International — Corruption Perceptions Index results workbook.

Reads the time-series sheet (name starts "CPI Timeseries"), which holds one
"CPI score YYYY" column per year (TI writes "CPI Score" for some older years,
so matching is case-insensitive). Without it, falls back to the main
"CPI YYYY" sheet and its "CPI score YYYY" column. The header row sits below a
title and an embargo line: it is located as the row holding "ISO3".
Country codes are TI's ISO3 as written (TI uses KSV for Kosovo).

`standard_errors` reads TI's stated uncertainty from the same sheet: "Standard error YYYY"
beside each year's score in the time series ("Standard error" beside "CPI score YYYY" on the
main sheet), as rows shaped like `parse`'s with the standard error as the value and the
score's indicator id (the uncertainty of issue 25 item 2, radar_pipeline/country_risk/uncertainty.py).
"""
from __future__ import annotations

import re
from dataclasses import replace

import polars as pl

from radar_pipeline.sources.toolkit import IndicatorSpec, LandedFile, SourceError, check_content
from radar_pipeline.sources.toolkit import tables as t

SOURCE = "ti_cpi"
FILE_PATTERNS = ("*.xlsx",)

_HEADER_MARKERS = ["ISO3", "Country / Territory", "Country", "Region"]


def _series_regex(template: str) -> re.Pattern[str]:
    """'CPI score {year}' -> case-insensitive regex capturing the year."""
    parts = [r"\s+".join(re.escape(w) for w in p.split(" ")) for p in template.strip().split("{year}")]
    return re.compile(r"^" + r"(\d{4})".join(parts) + r"$", re.IGNORECASE)


def _pick_sheet(sheets: list[str]) -> str | None:
    timeseries = [s for s in sheets if s.strip().lower().startswith("cpi timeseries")]
    if timeseries:
        return timeseries[0]
    main = [s for s in sheets if re.fullmatch(r"\s*CPI \d{4}\s*", s, re.IGNORECASE)]
    return main[0] if main else None


def _parse_file(file: LandedFile, specs: list[IndicatorSpec]) -> pl.DataFrame:
    check_content(file, "xlsx")
    sheets = t.sheet_names(file)
    sheet = _pick_sheet(sheets)
    if sheet is None:
        raise SourceError(SOURCE, "no CPI sheet: expected one named 'CPI Timeseries …' or "
                          f"'CPI <year>'; sheets found: {sheets}", file=file.name)
    where = f"sheet '{sheet}'"
    raw = t.read_sheet_raw(file, sheet)
    hdr = t.locate_header(raw, _HEADER_MARKERS, source=SOURCE, file=file.name, where=where)
    df = t.apply_header(raw, hdr)
    cols = t.require_columns(df, ["ISO3"], source=SOURCE, file=file.name, where=where)
    country_col = next((c for c in df.columns if c.lower().startswith("country")), None)
    if country_col is None:
        raise SourceError(SOURCE, f"no country column (name starting 'Country') in {where}; "
                          f"columns found: {[c for c in df.columns if not c.startswith('__')]}",
                          file=file.name, field="Country / Territory")
    out = []
    for spec in specs:
        rx = _series_regex(spec.series)
        year_cols = {c: int(m.group(1)) for c in df.columns if (m := rx.match(c))}
        if not year_cols:
            raise SourceError(
                SOURCE, f"no '{spec.series}' column in {where} (sheets found: {sheets}; "
                f"columns found: {[c for c in df.columns if not c.startswith('__')]})",
                file=file.name, field=spec.series)
        long = (df.select(pl.col(country_col).str.strip_chars().alias("country"),
                          pl.col(cols["ISO3"]).str.strip_chars().alias("code"),
                          pl.col(t.ROW), *year_cols)
                  .filter(pl.col("country").is_not_null() | pl.col("code").is_not_null())
                  .pipe(t.year_columns_to_long, year_cols, ["country", "code", t.ROW],
                        row_ref=pl.format("sheet '{}' row {}, column '{}'", pl.lit(sheet),
                                          pl.col(t.ROW), pl.col("column"))))
        long = t.parse_values(long, "raw_value", source=SOURCE, file=file.name,
                              field_col="column")
        out.append(long.with_columns(pl.lit(spec.indicator_id).alias("indicator_id")))
    return pl.concat(out).with_columns(pl.lit(SOURCE).alias("source"),
                                       pl.lit(file.vintage).alias("vintage"),
                                       pl.lit(file.name).alias("file"))


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    return t.parse_each(SOURCE, FILE_PATTERNS, _parse_file, files, specs)


SE_SERIES = "Standard error {year}"


def _parse_se_file(file: LandedFile, specs: list[IndicatorSpec]) -> pl.DataFrame:
    """A workbook's standard errors: 'Standard error YYYY' (time series); on the main sheet the
    one 'Standard error' column belongs to the sheet's 'CPI score YYYY' year. A workbook
    without them gives no rows (the uncertainty is optional; the score is read by `parse`)."""
    try:
        return _parse_file(file, [replace(s, series=SE_SERIES) for s in specs])
    except SourceError:
        pass
    sheet = _pick_sheet(t.sheet_names(file))
    if sheet is None:
        return pl.DataFrame()
    raw = t.read_sheet_raw(file, sheet)
    try:
        df = t.apply_header(raw, t.locate_header(raw, _HEADER_MARKERS, source=SOURCE, file=file.name,
                                                 where=f"sheet '{sheet}'"))
    except SourceError:
        return pl.DataFrame()
    se = next((c for c in df.columns if c.strip().lower() == "standard error"), None)
    years = [int(m.group(1)) for c in df.columns for s in specs if (m := _series_regex(s.series).match(c))]
    if se is None or len(set(years)) != 1:
        return pl.DataFrame()
    renamed = df.rename({se: SE_SERIES.format(year=years[0])})
    # the same path as parse on the renamed frame: a one-sheet file holding this table
    return _parse_frame(file, renamed, sheet, [replace(s, series=SE_SERIES) for s in specs])


def _parse_frame(file: LandedFile, df: pl.DataFrame, sheet: str, specs: list[IndicatorSpec]) -> pl.DataFrame:
    cols = t.require_columns(df, ["ISO3"], source=SOURCE, file=file.name, where=f"sheet '{sheet}'")
    country_col = next((c for c in df.columns if c.lower().startswith("country")), None)
    out = []
    for spec in specs:
        rx = _series_regex(spec.series)
        year_cols = {c: int(m.group(1)) for c in df.columns if (m := rx.match(c))}
        long = (df.select(pl.col(country_col).str.strip_chars().alias("country"),
                          pl.col(cols["ISO3"]).str.strip_chars().alias("code"), pl.col(t.ROW), *year_cols)
                  .filter(pl.col("country").is_not_null() | pl.col("code").is_not_null())
                  .pipe(t.year_columns_to_long, year_cols, ["country", "code", t.ROW],
                        row_ref=pl.format("sheet '{}' row {}, column '{}'", pl.lit(sheet),
                                          pl.col(t.ROW), pl.col("column"))))
        long = t.parse_values(long, "raw_value", source=SOURCE, file=file.name, field_col="column")
        out.append(long.with_columns(pl.lit(spec.indicator_id).alias("indicator_id")))
    return pl.concat(out).with_columns(pl.lit(SOURCE).alias("source"), pl.lit(file.vintage).alias("vintage"),
                                       pl.lit(file.name).alias("file"))


def standard_errors(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    """The rows of _standard_errors, read again only when the files (or specs, rules, parser code)
    changed: toolkit.cached, the parse cache (the uncertainty reads them at every refresh)."""
    from radar_pipeline.sources.toolkit.cached import parsed_vintage

    return parsed_vintage(SOURCE, files, specs, purpose="standard_errors", parse=_standard_errors)


def _standard_errors(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    """TI's standard error of each CPI score: rows shaped like `parse`'s (value = the standard
    error, on the score's 0-100 scale), empty where the workbook states none."""
    frames = [f for f in (_parse_se_file(file, specs) for file in files
                          if any(file.name.lower().endswith(p.lstrip("*")) for p in FILE_PATTERNS))
              if f.height]
    if not frames:
        return pl.DataFrame()
    return (pl.concat(frames, how="vertical_relaxed").filter(pl.col("value").is_not_null())
              .select("source", "indicator_id", "vintage", "file", "row_ref", "country", "code", "data_year",
                      "value"))
