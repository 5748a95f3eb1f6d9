"""UNICEF global databases — child labour workbook (% of children 5-17 in child labour, SDG 8.7.1;
e.g. `XLS_Child-labour-database_May-2022.xlsx`).

Layout of the sheet `Child labour` (other sheets are ignored: the May 2022 workbook also holds
`Child labour (3)`, the February 2021 vintage):

- preamble rows (GLOBAL DATABASES, title, "Last update: May 2022"), then the header row holding
  `Countries and areas` and `Child labour (%)+ (2013-2021)*`, located by content;
- two sub-header rows below it: `Total`, `Sex` (`Male`, `Female` one row lower) and
  `Data Source`. Each value column is followed by an unnamed footnote-flag column: `x` = data
  refer to years outside the heading's period, `y` = definition differs or part of the country.
  The flag is kept in `row_ref` ("..., footnote x");
- one row per country or area (names only, no code); `-` = no data (dropped);
- after the countries a blank row, a `SUMMARY` block of regional aggregates (East Asia and
  Pacific, ..., World) and the notes. The country block ends at the first row after the data
  starts whose name cell is empty or reads `SUMMARY`: nothing below it is read;
- columns to the right of `Data Source` (J-P in the May 2022 file) are UNICEF's internal check
  formulas repeating the header: value columns are looked up only between the country column
  and the first `Data Source` column, so they are never read.

The registry's `series` names the sub-header of the value column: `Total` (or `Male`/`Female`).

data_year: the workbook has no year column. The `Data Source` text names the survey and its
year, e.g. `MICS 2019`, `DHS 2015-16, UNICEF and ILO calculations`, `National Household Sample
Survey (...) 2015, UNICEF and ILO`. data_year = the last year named there; for a survey
spanning two years (`2018-19`, `2019-2020`) its END year, when fieldwork closed — the
convention of UNICEF's data warehouse and the SDG database, which reference multi-year surveys
by their final year. A value whose data source names no year is a SourceError (row and field):
a year is never guessed from the vintage.
"""
from __future__ import annotations

import re

import polars as pl

from radar_pipeline.sources.toolkit import IndicatorSpec, LandedFile, SourceError, check_content
from radar_pipeline.sources.toolkit import tables as t

SOURCE = "unicef_child_labour"
FILE_PATTERNS = ("*.xlsx",)

SHEET = "Child labour"
COUNTRY = "Countries and areas"
DATA_SOURCE = "Data Source"
END_OF_COUNTRIES = "summary"
NO_DATA = ("-", "–", "—")
# Sub-header rows scanned below the header row for Total / Male / Female / Data Source.
SUBHEADER_ROWS = 3
# "2015", "2018-19", "2019-2020", "2011/12": the (end) year of a survey.
_YEAR = r"\b(?:19|20)\d{2}(?:\s*[-–/]\s*(?:\d{4}|\d{2}))?\b"


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _pick_sheet(file: LandedFile) -> str:
    sheets = t.sheet_names(file)
    sheet = next((s for s in sheets if _norm(s) == _norm(SHEET)), None)
    if sheet is None:
        raise SourceError(SOURCE, f"no sheet '{SHEET}'; sheets found: {sheets}", file=file.name)
    return sheet


def _column_below(raw: pl.DataFrame, hdr: int, label: str, cells: list[str], *, file: str, where: str) -> str:
    """The leftmost of `cells` holding `label` in the sub-header rows below frame row `hdr`."""
    block = raw.slice(hdr + 1, SUBHEADER_ROWS)
    for c in cells:
        if any(v is not None and _norm(v) == _norm(label) for v in block[c].to_list()):
            return c
    found = sorted({v.strip() for c in cells for v in block[c].to_list() if v and v.strip()})
    raise SourceError(SOURCE, f"no '{label}' column in the {SUBHEADER_ROWS} rows below the header "
                      f"of {where}; sub-header cells found: {found}", file=file, field=label)


def _end_year(text: pl.Expr) -> pl.Expr:
    """End year of the last survey year (or range) named in a data-source text."""
    last = text.str.extract_all(_YEAR).list.last()
    start = last.str.slice(0, 4)
    tail = last.str.extract(r"[-–/]\s*(\d{2,4})$", 1)
    end = (pl.when(tail.str.len_chars() == 2).then(start.str.slice(0, 2) + tail)
             .otherwise(pl.coalesce(tail, start)))
    return end.cast(pl.Int32, strict=False)


def _parse_file(file: LandedFile, specs: list[IndicatorSpec]) -> pl.DataFrame:
    check_content(file, "xlsx")
    sheet = _pick_sheet(file)
    where = f"sheet '{sheet}'"
    raw = t.read_sheet_raw(file, sheet)
    hdr = t.locate_header(raw, [COUNTRY], source=SOURCE, file=file.name, where=where, min_hits=1)
    cells = [c for c in raw.columns if c != t.ROW]
    header = raw.row(hdr, named=True)
    country_col = next(c for c in cells if header[c] and _norm(header[c]) == _norm(COUNTRY))
    source_col = _column_below(raw, hdr, DATA_SOURCE, cells, file=file.name, where=where)
    # The table's own columns end at its (first) Data Source column: the check formulas to its
    # right repeat the header and must never stand in for a renamed column.
    table = cells[cells.index(country_col) + 1:cells.index(source_col)]

    name = pl.col(country_col).str.strip_chars().replace("", None)
    started = name.is_not_null().cum_sum() > 0
    stop = started & (name.is_null() | name.str.to_lowercase().str.starts_with(END_OF_COUNTRIES))
    body = (raw.slice(hdr + 1)
               .with_columns(name.alias("country"),
                             pl.col(source_col).str.strip_chars().replace("", None).alias("data_source"))
               .filter(started & (stop.cum_sum() == 0)))
    if body.height == 0:
        raise SourceError(SOURCE, f"no country rows below the header of {where}", file=file.name,
                          field=COUNTRY)
    dup = (body.with_columns(pl.col(t.ROW).min().over("country").alias("__first"))
               .filter(pl.col(t.ROW) != pl.col("__first")).head(1))
    if dup.height:
        raise SourceError(SOURCE, f"country {dup['country'].item()!r} is listed twice (first on row "
                          f"{dup['__first'].item()})", file=file.name,
                          row=f"{where} row {dup[t.ROW].item()}", field=COUNTRY)

    out = []
    for spec in specs:
        value_col = _column_below(raw, hdr, spec.series, table, file=file.name, where=where)
        idx = cells.index(value_col)
        flag = (pl.col(cells[idx + 1]).str.strip_chars().str.to_lowercase() if idx + 1 < len(cells)
                else pl.lit(None, pl.String))
        flag = pl.when(flag.str.contains(r"^[a-z]$")).then(flag)
        long = body.select(
            "country", "data_source", t.ROW,
            pl.col(value_col).str.strip_chars().replace(list(NO_DATA), None).alias("raw_value"),
            pl.format("sheet '{}' row {}, column '{}'", pl.lit(sheet), pl.col(t.ROW), pl.lit(spec.series))
              .alias("__ref"),
            flag.alias("flag"), pl.lit(spec.series).alias("field"),
        ).with_columns(
            pl.when(pl.col("flag").is_not_null())
              .then(pl.format("{}, footnote {}", pl.col("__ref"), pl.col("flag")))
              .otherwise(pl.col("__ref")).alias("row_ref"),
            _end_year(pl.col("data_source")).alias("data_year"),
        )
        long = t.parse_values(long, "raw_value", source=SOURCE, file=file.name, field_col="field")
        bad = long.filter(pl.col("data_year").is_null()).head(1)
        if bad.height:
            raise SourceError(SOURCE, f"the data source {bad['data_source'].item()!r} of "
                              f"{bad['country'].item()!r} names no survey year, so the value has no "
                              "data year", file=file.name, row=bad["row_ref"].item(), field=DATA_SOURCE)
        out.append(long.with_columns(pl.lit(spec.indicator_id).alias("indicator_id")))
    return pl.concat(out).with_columns(
        pl.lit(SOURCE).alias("source"), pl.lit(file.vintage).alias("vintage"),
        pl.lit(file.name).alias("file"), pl.lit(None, pl.String).alias("code"))


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    return t.parse_each(SOURCE, FILE_PATTERNS, _parse_file, files, specs)

