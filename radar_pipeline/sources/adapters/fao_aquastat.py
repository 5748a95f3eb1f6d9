"""FAO AQUASTAT — dissemination-system CSV export (`AQUASTAT Dissemination System.csv`).

Layout: header `Country, Variable, Unit, Symbol, "2020"` — comma + space separators, the year
header quoted — then one line per country x variable, one column per year of the query
(`"2018", "2019", ...` when several years were exported). Read with the CSV module's
`skipinitialspace`, so a quoted cell after a space (`, "Korea, Republic of"`) stays one cell.
`Symbol` is FAO's flag (E estimate, I imputed, empty official); it is kept in `row_ref`.
Country names only, no code; the export holds countries only (no aggregates). Empty cell =
no value.

The registry's `series` is the `Variable` to keep (e.g. `SDG 6.4.2. Water Stress`), matched
whitespace-normalised and case-insensitively; each year column gives `data_year`. A country
listed twice for the variable is a SourceError (the export holds one line per country and
variable).
"""
from __future__ import annotations

import csv
import io
import re

import polars as pl

from radar_pipeline.sources.toolkit import IndicatorSpec, LandedFile, SourceError, check_content
from radar_pipeline.sources.toolkit import tables as t

SOURCE = "fao_aquastat"
FILE_PATTERNS = ("*.csv",)

COUNTRY, VARIABLE, SYMBOL = "Country", "Variable", "Symbol"


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def read_export(file: LandedFile) -> pl.DataFrame:
    """Every cell as text (stripped; empty -> null), the header's names, plus `__line`."""
    text = t.decode_text(file, check_content(file, "csv"))
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    records, lines, start = [], [], 1
    try:
        for record in reader:
            if any(cell.strip() for cell in record):
                records.append([cell.strip() for cell in record])
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise SourceError(SOURCE, f"malformed CSV: {exc}", file=file.name,
                          row=f"line {reader.line_num}") from exc
    if not records:
        raise SourceError(SOURCE, "no header line", file=file.name)
    header, body = records[0], records[1:]
    ragged = next((i for i, r in enumerate(body) if len(r) != len(header)), None)
    if ragged is not None:
        raise SourceError(SOURCE, f"{len(body[ragged])} cells where the header has {len(header)} "
                          f"({header})", file=file.name, row=f"line {lines[ragged + 1]}")
    names = [h or f"__col{i}" for i, h in enumerate(header)]
    if len(set(names)) != len(names):
        raise SourceError(SOURCE, f"duplicate column names in the header: {header}", file=file.name)
    df = pl.DataFrame(body, schema=dict.fromkeys(names, pl.String), orient="row")
    return (df.with_columns(pl.all().replace("", None))
              .with_columns(pl.Series(t.LINE, lines[1:], dtype=pl.Int64)))


def _parse_file(file: LandedFile, specs: list[IndicatorSpec]) -> pl.DataFrame:
    df = read_export(file)
    cols = t.require_columns(df, [COUNTRY, VARIABLE, SYMBOL], source=SOURCE, file=file.name)
    years = {c: int(c) for c in df.columns if re.fullmatch(r"\d{4}", c)}
    if not years:
        raise SourceError(SOURCE, "no year columns (e.g. \"2020\") in the header; columns found: "
                          f"{[c for c in df.columns if c != t.LINE]}", file=file.name, field="<year>")
    df = df.with_columns(pl.col(cols[VARIABLE]).str.replace_all(r"\s+", " ").str.to_lowercase()
                         .alias("__variable"))
    out = []
    for spec in specs:
        rows = df.filter(pl.col("__variable") == _norm(spec.series))
        if rows.height == 0:
            found = df[cols[VARIABLE]].drop_nulls().unique(maintain_order=True).to_list()
            raise SourceError(SOURCE, f"no line with {VARIABLE} {spec.series!r}; {len(found)} variable(s) "
                              f"found: {found[:40]}", file=file.name, field=VARIABLE)
        t.first_bad(file, rows, pl.col(cols[COUNTRY]).is_null(), COUNTRY, cols[VARIABLE], "country is empty for")
        dup = (rows.with_columns(pl.col(t.LINE).min().over(cols[COUNTRY]).alias("__first"))
                   .filter(pl.col(t.LINE) != pl.col("__first")).head(1))
        if dup.height:
            raise SourceError(SOURCE, f"country {dup[cols[COUNTRY]].item()!r} has two lines for "
                              f"{spec.series!r} (first on line {dup['__first'].item()})", file=file.name,
                              row=f"line {dup[t.LINE].item()}", field=COUNTRY)
        ref = pl.format("line {}, column '{}'", pl.col(t.LINE), pl.col("column"))
        ref = (pl.when(pl.col(cols[SYMBOL]).is_not_null())
                 .then(pl.format("{}, symbol {}", ref, pl.col(cols[SYMBOL]))).otherwise(ref))
        long = (rows.select(pl.col(cols[COUNTRY]).alias("country"), pl.col(cols[SYMBOL]), t.LINE, *years)
                    .pipe(t.year_columns_to_long, years, ["country", cols[SYMBOL], t.LINE], row_ref=ref))
        long = t.parse_values(long, "raw_value", source=SOURCE, file=file.name, field_col="column")
        out.append(long.with_columns(pl.lit(spec.indicator_id).alias("indicator_id")))
    return pl.concat(out).with_columns(
        pl.lit(SOURCE).alias("source"), pl.lit(file.vintage).alias("vintage"),
        pl.lit(file.name).alias("file"), pl.lit(None, pl.String).alias("code"))


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    return t.parse_each(SOURCE, FILE_PATTERNS, _parse_file, files, specs)
