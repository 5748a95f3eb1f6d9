"""CSV helpers shared by the World Bank, ITUC and user-file adapters.

Every frame returned here carries a `__line` column: the 1-based line number a
user sees in a text editor for the first line of each record. Quoted fields
that hold a line break (WGI "Indicator Name", WDI metadata notes) are counted,
so records after them still get the right line.
"""
from __future__ import annotations

import io
import re

import polars as pl

from radar_pipeline.sources.base import LandedFile, SourceError

LINE = "__line"


def decode_text(file: LandedFile, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:  # check_content(kind="csv") normally catches this first
        raise SourceError(file.source, f"not UTF-8 text at byte {exc.start}", file=file.name) from exc


def read_csv_text(file: LandedFile, text: str, *, header_pattern: str | None = None,
                  separator: str = ",") -> pl.DataFrame:
    """All cells as strings (empty cell -> null), header names stripped, unnamed
    trailing columns dropped, plus `__line`.

    header_pattern: regex (multiline, matched at a line start) that locates the
    header line below a preamble; None = the header is the first line.
    """
    offset = 0
    if header_pattern is not None:
        m = re.search(header_pattern, text, flags=re.MULTILINE)
        if m is None:
            raise SourceError(file.source, f"no header line matching {header_pattern!r} found",
                              file=file.name)
        offset = m.start()
    header_line = text.count("\n", 0, offset) + 1
    body = text[offset:]
    try:
        df = pl.read_csv(io.StringIO(body), separator=separator, infer_schema=False,
                         truncate_ragged_lines=False)
    except Exception as exc:  # polars ComputeError etc. for ragged/unterminated records
        raise SourceError(file.source, f"cannot parse as CSV below the header on line "
                          f"{header_line}: {exc}", file=file.name) from exc
    df = df.rename({c: c.strip() for c in df.columns})
    df = df.drop([c for c in df.columns if c == "" or re.fullmatch(r"_duplicated_\d+", c)])
    if df.width == 0:
        raise SourceError(file.source, "CSV has no named columns", file=file.name)
    # Line breaks inside the quoted fields of each record.
    breaks = pl.sum_horizontal(
        [pl.col(c).str.count_matches("\n").fill_null(0) for c in df.columns]
    ).cast(pl.Int64)
    span = breaks + 1
    cols = df.columns
    return (df.with_columns((pl.lit(header_line + 1, pl.Int64) + span.cum_sum() - span).alias(LINE))
              # blank lines come back as all-null records: keep their line count, drop the row
              .filter(pl.any_horizontal(pl.col(c).is_not_null() for c in cols)))


def require_columns(file: LandedFile, df: pl.DataFrame, names: list[str]) -> None:
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise SourceError(file.source, f"missing column(s) {missing}; found {[c for c in df.columns if c != LINE]}",
                          file=file.name)


def first_bad(file: LandedFile, df: pl.DataFrame, bad: pl.Expr, field: str | pl.Expr,
              show: str, reason: str) -> None:
    """Raise SourceError for the first row where `bad` holds, naming line, field and value."""
    hit = df.filter(bad).head(1)
    if hit.height:
        fld = field if isinstance(field, str) else hit.select(field).item()
        value = hit[show].item()
        raise SourceError(file.source, f"{reason}: {value!r}", file=file.name,
                          row=f"line {hit[LINE].item()}", field=fld)


def parse_float(file: LandedFile, df: pl.DataFrame, raw: str, out: str, field: str | pl.Expr) -> pl.DataFrame:
    """Cast text column `raw` to Float64 as `out`; empty -> null; anything else that is not a
    number -> SourceError naming the line and field."""
    df = df.with_columns(pl.col(raw).str.strip_chars().replace("", None).alias(raw))
    df = df.with_columns(pl.col(raw).cast(pl.Float64, strict=False).alias(out))
    first_bad(file, df, pl.col(raw).is_not_null() & pl.col(out).is_null(), field, raw,
              "value is not a number")
    return df


def spec_table(specs) -> pl.DataFrame:
    """indicator_id/series pairs of the registry rows an adapter was given."""
    return pl.DataFrame({"indicator_id": [s.indicator_id for s in specs],
                         "series": [s.series for s in specs]},
                        schema={"indicator_id": pl.String, "series": pl.String})
