"""World Bank Worldwide Governance Indicators (WGI): every layout the World Bank has served.

One vintage folder may hold any of these; all parse to the same rows
(series `RL.EST`, `RL.STD.ERR`, ... for CC/GE/PV/RQ/RL/VA):

a. WIDE bulk CSV (`WGIData.csv` from WGI_csv.zip, up to the 2023 update):
   no preamble, header `Country Name,Country Code,Indicator Name,Indicator Code,
   1996,1998,2000,2002,...` (one column per year, trailing empty column), one
   record per economy x series. Some `Indicator Name` values hold a line break
   inside quotes; row_ref still gives the editor line.
b. LONG workbook (`wgidataset.xlsx`, since the 2024 update): one row per
   economy x year x indicator, header `codeindyr, code, countryname, year,
   indicator, estimate, stddev, nsource, pctrank, pctranklower, pctrankupper`,
   `indicator` in lower case (`rl`), `..` for missing. Each value column is a
   series of the wide layout: `estimate` -> `<IND>.EST`, `stddev` -> `.STD.ERR`,
   `nsource` -> `.NO.SRC`, `pctrank` -> `.PER.RNK`, `pctranklower`/`upper` ->
   `.PER.RNK.LOWER`/`.UPPER`. The header row is located by content.
c. The CSV export of that long table (same columns, any file name).
d. API v2 JSON pages (source=3), as live mode downloads them.

The layout is sniffed from the header, not the file name. The companion
files of the bulk zip (`WGICountry*.csv`, `WGISeries*.csv`, `WGIFootNote*.csv`)
are skipped; any other CSV/workbook is an error naming the file.

Codes: the wide CSV uses ISO3 (`AND`, `ROU`, `COD`); the long 2024 file keeps
the WGI's legacy codes (`ADO`, `ROM`, `ZAR`, `TMP`, `WBG`, `KSV`). They are
passed on as the file writes them; rules/country_overrides.csv maps the legacy
ones (central country mapping, never in the adapter). WGI lists economies
only (no aggregates).

`standard_errors` reads the World Bank's stated uncertainty of each estimate: the series
`<IND>.STD.ERR` beside `<IND>.EST` (the `stddev` column of the long layout), as rows shaped like
`parse`'s with the standard error as the value and the estimate's indicator id (issue 25 item 2,
radar_pipeline/country_risk/uncertainty.py).
"""
from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import polars as pl

from radar_pipeline.sources.adapters import worldbank_wdi
from radar_pipeline.sources.adapters.worldbank_wdi import read_wide_csv
from radar_pipeline.sources.toolkit import (
    IndicatorSpec,
    LandedFile,
    SourceError,
    check_content,
    conform,
    empty_observations,
)
from radar_pipeline.sources.toolkit import tables as t
from radar_pipeline.sources.toolkit.fetch import HttpClient
from radar_pipeline.sources.toolkit.tables import LINE, decode_text, spec_table

SOURCE = "worldbank_wgi"
FILE_PATTERNS = ("*.csv", "*.xlsx", "*.json")
API_SOURCE_ID = "3"  # the API v2 `source` parameter of the Worldwide Governance Indicators

# Long-layout value column -> suffix of the wide layout's Indicator Code.
LONG_SERIES = {"estimate": "EST", "stddev": "STD.ERR", "nsource": "NO.SRC", "pctrank": "PER.RNK",
               "pctranklower": "PER.RNK.LOWER", "pctrankupper": "PER.RNK.UPPER"}
LONG_KEYS = ["code", "countryname", "year", "indicator"]
_COMPANIONS = re.compile(r"^WGI(Country|Series|FootNote)", re.IGNORECASE)
_OUT = ["source", "indicator_id", "vintage", "file", "row_ref", "country", "code", "data_year", "value"]


def _is_long_header(cells: list[str]) -> bool:
    names = {re.sub(r"\s+", "", c or "").casefold() for c in cells}
    return {"code", "year", "indicator", "estimate"} <= names


def _long_rows(file: LandedFile, df: pl.DataFrame, where: str, wanted: set[str]) -> pl.DataFrame:
    """A located long table (`__row` = sheet row / file line) -> long rows with `series`.
    Only the `wanted` series are parsed: a broken cell in a series no indicator reads
    does not stop the run."""
    cols = t.require_columns(df, LONG_KEYS, source=SOURCE, file=file.name, where=where)
    values = {c: t.find_column(df, c) for c in LONG_SERIES}
    values = {k: v for k, v in values.items() if v is not None}
    if "estimate" not in values:
        raise SourceError(SOURCE, f"expected column 'estimate' in {where}", file=file.name,
                          field="estimate")
    long = (df.select(pl.col(cols["code"]).str.strip_chars().alias("code"),
                      pl.col(cols["countryname"]).str.strip_chars().alias("country"),
                      pl.col(cols["year"]).alias("year_raw"),
                      pl.col(cols["indicator"]).str.strip_chars().str.to_uppercase().alias("ind"),
                      pl.col(t.ROW), *[pl.col(c).alias(k) for k, c in values.items()])
              .filter(pl.col("code").is_not_null() | pl.col("country").is_not_null())
              .unpivot(on=list(values), index=["code", "country", "year_raw", "ind", t.ROW],
                       variable_name="column", value_name="raw_value")
              .with_columns(
                  pl.format("{}.{}", pl.col("ind"),
                            pl.col("column").replace_strict(LONG_SERIES, return_dtype=pl.String))
                  .alias("series"),
                  pl.format("{} {}, column '{}'", pl.lit(where), pl.col(t.ROW), pl.col("column"))
                  .alias("row_ref"),
                  t.year_from_text("year_raw").alias("data_year"))
              .filter(pl.col("series").is_in(sorted(wanted))))
    long = t.parse_values(long, "raw_value", source=SOURCE, file=file.name, field_col="column")
    t.check_years(long, "year_raw", source=SOURCE, file=file.name)
    return long.select("row_ref", "country", "code", "series", "data_year", "value")


def _xlsx(file: LandedFile, wanted: set[str]) -> pl.DataFrame:
    check_content(file, "xlsx")
    for sheet in t.sheet_names(file):
        raw = t.read_sheet_raw(file, sheet)
        try:
            idx = t.locate_header(raw, LONG_KEYS + ["estimate"], source=SOURCE, file=file.name,
                                  where=f"sheet '{sheet}'", min_hits=4)
        except SourceError:
            continue
        return _long_rows(file, t.apply_header(raw, idx), f"sheet '{sheet}' row", wanted)
    raise SourceError(SOURCE, "no sheet holds the WGI long table (header with columns "
                      f"{LONG_KEYS + ['estimate']}); sheets: {t.sheet_names(file)}", file=file.name)


def _csv(file: LandedFile, wanted: set[str]) -> pl.DataFrame:
    data = check_content(file, "csv")
    text = decode_text(file, data)
    first = text.split("\n", 1)[0]
    if re.search(r'^\ufeff?"?Country Name"?\s*,\s*"?Country Code"?', text[:5000], flags=re.MULTILINE):
        rows = read_wide_csv(file, text)
        return rows.select(pl.format("line {}", pl.col(LINE)).alias("row_ref"), "country", "code",
                           "series", "data_year", "value")
    if _is_long_header(next(iter(_csv_records(first)), [])):
        return _long_rows(file, t.read_csv_raw(file, data, ["estimate"]), "line", wanted)
    raise SourceError(SOURCE, "unrecognised CSV layout: expected the wide WGIData header "
                      "'Country Name,Country Code,Indicator Name,Indicator Code,<years>' or the long "
                      f"header 'code,countryname,year,indicator,estimate,...'; first line {first[:80]!r}",
                      file=file.name)


def _csv_records(line: str) -> list[list[str]]:
    import csv

    return list(csv.reader(io.StringIO(line.lstrip("\ufeff"))))


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    if not files or not specs:
        return empty_observations()
    spec_df = spec_table(specs)
    frames = []
    json_files = [f for f in files if f.name.lower().endswith(".json")]
    if json_files:
        # Same page format as WDI (live mode downloads WGI through the API v2).
        frames.append(worldbank_wdi.parse(json_files, specs).with_columns(source=pl.lit(SOURCE)))
    for f in files:
        name = f.name.lower()
        if name.endswith(".json") or _COMPANIONS.match(f.name):
            continue
        wanted = set(spec_df["series"])
        rows = _xlsx(f, wanted) if name.endswith(".xlsx") else _csv(f, wanted)
        frames.append(rows.join(spec_df, on="series", how="inner").select(
            pl.lit(SOURCE).alias("source"), "indicator_id", pl.lit(f.vintage).alias("vintage"),
            pl.lit(f.name).alias("file"), "row_ref", "country", "code", "data_year", "value"))
    if not frames:
        return empty_observations()
    return conform(pl.concat([fr.select(_OUT) for fr in frames], how="vertical_relaxed"))


def standard_errors(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    """The rows of _standard_errors, read again only when the files (or specs, rules, parser code)
    changed: toolkit.cached, the parse cache (the uncertainty reads them at every refresh)."""
    from radar_pipeline.sources.toolkit.cached import parsed_vintage

    return parsed_vintage(SOURCE, files, specs, purpose="standard_errors", parse=_standard_errors)


def _standard_errors(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    """The standard error of each `<IND>.EST` estimate (series `<IND>.STD.ERR`, same units),
    under the estimate's indicator id; other series (no stated error) give no rows."""
    se_specs = [replace(s, series=s.series[:-len(".EST")] + ".STD.ERR") for s in specs
                if s.series.upper().endswith(".EST")]
    if not se_specs:
        return empty_observations()
    return parse(files, se_specs)


def download(dest: Path, client: HttpClient, log: Callable[[str], None]) -> list[Path]:
    """Live mode (DownloadsItself): the API v2 pages, as the WDI adapter fetches them."""
    return worldbank_wdi.download_source(SOURCE, API_SOURCE_ID, dest, client, log)
