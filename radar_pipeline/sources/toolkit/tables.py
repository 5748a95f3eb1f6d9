"""Reading publisher tables: the one set of helpers every adapter uses for CSV text, CSVs with a
preamble and spreadsheets (ti_cpi, yale_epi, freedom_house_fiw, fund_for_peace_fsi, undp_gii,
nd_gain, the World Bank, ILOSTAT, curated and user files, the reference lists).

Two ways to find the header, because publishers do both:
- *line-numbered text* (`read_csv_text`): the header is the first line, or the first line matching
  a regex below a preamble; every frame carries `__line` (LINE), the 1-based line a user sees in a
  text editor for the first line of each record. Quoted fields holding a line break (WGI
  "Indicator Name", WDI metadata notes) are counted, so records after them keep the right line.
- *located by content* (`read_csv_raw`, `read_sheet_raw` + `locate_header` + `apply_header`):
  publisher files put a title, notes or an embargo line above the header, so the header row is
  the row holding the expected column names, never a hard-coded row. These frames carry `__row`
  (ROW): the 1-based row number a spreadsheet user sees (xlsx) or the line number (csv).

Values: `parse_values` reads publisher cells, where `..`, `NA`, `n/a` and empty mean "no value"
(those rows are dropped); `parse_float` is the strict reading for data files (only an empty cell
is missing). Both raise SourceError naming the row and the field of the first bad cell.
"""
from __future__ import annotations

import csv
import io
import re

import fastexcel
import polars as pl

from radar_pipeline.sources.toolkit.contract import (
    IndicatorSpec,
    LandedFile,
    SourceError,
    conform,
    empty_observations,
)

ROW = "__row"    # spreadsheet row / CSV line of a located-header frame
LINE = "__line"  # editor line of the first line of a record (read_csv_text)
# Cell texts that mean "no value" in these publishers' files.
MISSING_TOKENS = ("", "na", "n/a", "..")
# How far down a sheet/CSV the header row may sit.
HEADER_SCAN_ROWS = 40


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def sheet_names(file: LandedFile) -> list[str]:
    try:
        return list(fastexcel.read_excel(file.path).sheet_names)
    except Exception as exc:  # fastexcel raises its own error types for broken workbooks
        raise SourceError(file.source, f"cannot open workbook: {exc}", file=file.name) from exc


# a cell text that is a number with a fraction or an exponent (fastexcel's text of a float cell)
_FRACTIONAL = r"^\s*[-+]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][-+]?\d+)\s*$"


# (file, its stat, sheet) -> the sheet as read_sheet_raw returned it, for the last few sheets read
# in this process. A refresh reads the WGI workbook's sheet three times (its observations, their
# standard errors for the uncertainty, the benchmark values): ~0.4 s each. Frames are immutable;
# a file replaced or edited since has another stat and is read again.
_SHEETS: dict[tuple, pl.DataFrame] = {}
# entries each of these per-process memos keeps (the oldest forgotten first)
_KEPT = 4


def _keep(memo: dict, key, value) -> None:
    memo[key] = value
    while len(memo) > _KEPT:
        del memo[next(iter(memo))]


def read_sheet_raw(file: LandedFile, sheet: str) -> pl.DataFrame:
    """Every cell of a sheet as text, no header; `__row` = spreadsheet row number (read once per
    file content and sheet in a process, see _SHEETS)."""
    try:
        st = file.path.stat()
        key = (str(file.path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, sheet)
    except OSError:
        key = None
    if key is not None and key in _SHEETS:
        return _SHEETS[key]
    df = _read_sheet_raw(file, sheet)
    if key is not None:
        _keep(_SHEETS, key, df)
    return df


def _read_sheet_raw(file: LandedFile, sheet: str) -> pl.DataFrame:
    """Every cell of a sheet as text, no header; `__row` = spreadsheet row number.

    fastexcel writes a float cell as text with 10 significant digits (the WGI 2024 workbook's
    1.2605326175689697 came out 1.260532618), so the sheet is read a second time as floats and
    every fractional number takes the float's shortest round-trip text: the value stored is
    the publisher's double, bit for bit. Integers, codes and text cells keep their text."""
    try:
        reader = fastexcel.read_excel(file.path)
        loaded = reader.load_sheet(sheet, header_row=None, skip_rows=0, dtypes="string")
        df = pl.DataFrame(loaded.to_arrow())
        # only the columns holding a fractional number are read again
        fractional = [i for i, c in enumerate(df.columns)
                      if df[c].str.contains(_FRACTIONAL).fill_null(False).any()]
        floats = pl.DataFrame(reader.load_sheet(sheet, header_row=None, skip_rows=0, dtypes="float",
                                                dtype_coercion="coerce", use_columns=fractional).to_arrow()
                              ) if fractional else None
    except Exception as exc:
        raise SourceError(file.source, f"cannot read sheet '{sheet}': {exc}", file=file.name) from exc
    if floats is not None and floats.shape == (df.height, len(fractional)):
        exact = {df.columns[i]: floats.to_series(n) for n, i in enumerate(fractional)}
        df = df.with_columns(
            pl.when(pl.col(c).str.contains(_FRACTIONAL).fill_null(False) & f.is_not_null())
              .then(f.cast(pl.String)).otherwise(pl.col(c)).alias(c) for c, f in exact.items())
    df = df.rename({c: f"c{i}" for i, c in enumerate(df.columns)})
    # skip_rows=0 keeps leading empty rows, so frame index 0 is spreadsheet row 1.
    return df.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))


def read_csv_raw(file: LandedFile, data: bytes, header_names: list[str]) -> pl.DataFrame:
    """A CSV whose header is located by content (the first record, within the first
    HEADER_SCAN_ROWS records, holding one of `header_names`), returned with the
    header applied and `__row` = line number of each record (one line per record
    assumed below the header, as in every file these adapters read)."""
    text = data.decode("utf-8-sig")
    wanted = {_norm(h) for h in header_names}
    reader = csv.reader(io.StringIO(text, newline=""))
    header_record, header_line = None, None
    try:
        for i, record in enumerate(reader):
            if i >= HEADER_SCAN_ROWS:
                break
            if any(_norm(cell) in wanted for cell in record):
                header_record, header_line = i, reader.line_num
                break
    except csv.Error as exc:
        raise SourceError(file.source, f"malformed CSV: {exc}", file=file.name,
                          row=f"line {reader.line_num}") from exc
    if header_record is None:
        raise SourceError(file.source, f"no header row holding any of {sorted(header_names)} "
                          f"in the first {HEADER_SCAN_ROWS} lines", file=file.name)
    try:
        raw = pl.read_csv(io.BytesIO(text.encode("utf-8")), has_header=False, infer_schema=False,
                          skip_rows=header_record, raise_if_empty=False)
    except Exception as exc:  # ragged rows, bad quoting
        raise SourceError(file.source, f"cannot parse CSV below the header: {exc}",
                          file=file.name) from exc
    raw = raw.rename({c: f"c{i}" for i, c in enumerate(raw.columns)})
    raw = raw.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64) + header_line)
    return apply_header(raw, 0)


def locate_header(raw: pl.DataFrame, expected: list[str], *, source: str, file: str,
                  where: str, min_hits: int = 2) -> int:
    """Frame index of the first row holding at least `min_hits` of the expected
    column names (case/whitespace-insensitive). Tolerates one renamed column so
    that the later column check can name it."""
    wanted = [_norm(e) for e in expected]
    need = min(min_hits, len(wanted))
    cells = [c for c in raw.columns if c != ROW]
    head = raw.head(HEADER_SCAN_ROWS)
    if not cells or head.height == 0:
        raise SourceError(source, f"{where} has no rows", file=file)
    hits = head.select(pl.sum_horizontal(
        [pl.col(c).str.replace_all(r"\s+", " ").str.strip_chars().str.to_lowercase()
         .is_in(wanted).fill_null(False).cast(pl.Int32) for c in cells]).alias("hits"))["hits"]
    if hits.max() is None or hits.max() < need:
        raise SourceError(source, f"no header row in {where}: expected a row holding columns "
                          f"{expected} within the first {HEADER_SCAN_ROWS} rows", file=file)
    return int((hits >= need).arg_true()[0])


def apply_header(raw: pl.DataFrame, header_idx: int) -> pl.DataFrame:
    """Use frame row `header_idx` as column names (stripped; empty -> `__colN`;
    duplicates suffixed `__N`) and return the rows below it, with `__row`."""
    cells = [c for c in raw.columns if c != ROW]
    header = raw.row(header_idx, named=True)
    names: list[str] = []
    for i, c in enumerate(cells):
        name = re.sub(r"\s+", " ", str(header[c] or "")).strip() or f"__col{i}"
        while name in names:
            name = f"{name}__{i}"
        names.append(name)
    return raw.slice(header_idx + 1).rename(dict(zip(cells, names)))


def find_column(df: pl.DataFrame, name: str) -> str | None:
    """Actual column name matching `name` case/whitespace-insensitively."""
    target = _norm(name)
    return next((c for c in df.columns if _norm(c) == target), None)


def require_columns(df: pl.DataFrame, names: list[str], *, source: str, file: str,
                    where: str = "the header") -> dict[str, str]:
    """Map each expected name to the file's column (case/whitespace-insensitive); SourceError
    naming the expected column(s) and the columns found when one is missing."""
    mapping = {n: find_column(df, n) for n in names}
    missing = [n for n, c in mapping.items() if c is None]
    if missing:
        found = [c for c in df.columns if c not in (ROW, LINE) and not c.startswith("__col")]
        raise SourceError(source, f"expected column(s) {missing} not found in {where}; "
                          f"columns found: {found}", file=file,
                          field=missing[0])
    return mapping  # type: ignore[return-value]


def with_columns_named(file: LandedFile, df: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """`require_columns`, then the found columns renamed to the expected spelling, for code that
    addresses them by name (`pl.col("Country Code")`)."""
    present = [n for n in names if n in df.columns]  # exact spelling first: never renamed onto
    cols = require_columns(df, [n for n in names if n not in present], source=file.source, file=file.name)
    return df.rename({c: n for n, c in cols.items() if c != n})


def parse_values(df: pl.DataFrame, value_col: str, *, source: str, file: str,
                 ref_col: str = "row_ref", field_col: str | None = None) -> pl.DataFrame:
    """Turn the text column `value_col` into Float64 `value`: missing tokens
    (empty, NA, N/A, ..) become null and are dropped; any other non-number is a
    SourceError naming the row and the field."""
    txt = pl.col(value_col).cast(pl.String).str.strip_chars()
    df = df.with_columns(
        txt.alias("__txt"),
        txt.str.replace_all(",", "").cast(pl.Float64, strict=False).alias("value"),
    )
    bad = df.filter(pl.col("value").is_null() & pl.col("__txt").is_not_null()
                    & ~pl.col("__txt").str.to_lowercase().is_in(list(MISSING_TOKENS)))
    if bad.height:
        first = bad.row(0, named=True)
        raise SourceError(source, f"value {first['__txt']!r} is not a number "
                          f"({bad.height} such cell(s))", file=file, row=first[ref_col],
                          field=first[field_col] if field_col else value_col)
    return df.drop("__txt").filter(pl.col("value").is_not_null())


def year_from_text(col: str) -> pl.Expr:
    """Four-digit year at the start of a cell's text: '2023', '2023.0' or a
    datetime rendered as '2023-06-01 00:00:00' all give 2023."""
    return pl.col(col).cast(pl.String).str.strip_chars().str.extract(r"^(\d{4})", 1).cast(pl.Int32)


def check_years(df: pl.DataFrame, year_src: str, *, source: str, file: str,
                ref_col: str = "row_ref") -> None:
    """SourceError for rows holding a value whose year cell is not a year."""
    bad = df.filter(pl.col("data_year").is_null())
    if bad.height:
        first = bad.row(0, named=True)
        raise SourceError(source, f"year {first.get(year_src)!r} is not a four-digit year",
                          file=file, row=first[ref_col], field=year_src)


def year_columns_to_long(df: pl.DataFrame, year_cols: dict[str, int], index: list[str],
                         row_ref: pl.Expr | None = None) -> pl.DataFrame:
    """A table with one column per year -> one row per (index, year column): `column` (the
    header), `raw_value`, `row_ref` (default "line <n>, column '<header>'") and `data_year`
    (`year_cols` maps each header to its year)."""
    if row_ref is None:
        row_ref = pl.format("line {}, column '{}'", pl.col(ROW), pl.col("column"))
    return (df.unpivot(on=list(year_cols), index=index, variable_name="column", value_name="raw_value")
              .with_columns(row_ref.alias("row_ref"),
                            pl.col("column").replace_strict(year_cols, return_dtype=pl.Int32)
                            .alias("data_year")))


def series_columns_to_long(df: pl.DataFrame, cols: dict[str, str], specs, *, source: str,
                           file: LandedFile, sheet: str, country: str, year: str) -> pl.DataFrame:
    """A name-keyed sheet with a year column and one column per registry series
    (Freedom House, FSI) -> observation rows; values parsed, years checked."""
    series = list(dict.fromkeys(s.series for s in specs))
    by_series = {s.series: s.indicator_id for s in specs}
    long = (df.select(pl.col(cols[country]).str.strip_chars().alias("country"),
                      pl.col(cols[year]).alias(year), pl.col(ROW),
                      *[pl.col(cols[s]).alias(s) for s in series])
              .filter(pl.col("country").is_not_null())
              .unpivot(on=series, index=["country", year, ROW], variable_name="series",
                       value_name="raw_value")
              .with_columns(
                  pl.format("sheet '{}' row {}, column '{}'", pl.lit(sheet), pl.col(ROW),
                            pl.col("series")).alias("row_ref"),
                  pl.col("series").replace_strict(by_series, return_dtype=pl.String)
                  .alias("indicator_id"),
                  year_from_text(year).alias("data_year")))
    long = parse_values(long, "raw_value", source=source, file=file.name, field_col="series")
    check_years(long, year, source=source, file=file.name)
    return long.with_columns(pl.lit(source).alias("source"), pl.lit(file.vintage).alias("vintage"),
                             pl.lit(file.name).alias("file"), pl.lit(None, pl.String).alias("code"))


def parse_each(source: str, patterns: tuple[str, ...], parse_file, files: list[LandedFile],
               specs) -> pl.DataFrame:
    """The `parse` of an adapter that reads every file of a vintage folder the same way."""
    if not specs:
        return empty_observations()
    if not files:
        raise SourceError(source, f"no file matching {patterns} in the vintage folder")
    return conform(pl.concat([parse_file(f, specs) for f in files], how="diagonal_relaxed"))


# --------------------------------------------------------------------------- line-numbered text

def decode_text(file: LandedFile, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:  # check_content(kind="csv") normally catches this first
        raise SourceError(file.source, f"not UTF-8 text at byte {exc.start}", file=file.name) from exc


# The last few CSV texts read_csv_text parsed in this process, with their frames: a refresh parses
# the HDR composite CSV (undp_gii) for its indicator and again for the benchmark values (~0.1 s
# per file), as read_sheet_raw's memo does for workbooks. Keyed by the text itself (compared, not
# only hashed) and the two options: the same text always gives the same frame. Texts over
# _CSV_TEXT_MAX characters are not kept (a bulk export held for the rest of a refresh).
_CSV_TEXTS: dict[tuple, tuple[str, pl.DataFrame]] = {}
_CSV_TEXT_MAX = 32 * 2**20


def read_csv_text(file: LandedFile, text: str, *, header_pattern: str | None = None,
                  separator: str = ",") -> pl.DataFrame:
    """All cells as strings (empty cell -> null), header names stripped, unnamed
    trailing columns dropped, plus `__line`.

    header_pattern: regex (multiline, matched at a line start) that locates the
    header line below a preamble; None = the header is the first line.
    """
    key = (hash(text), len(text), header_pattern, separator)
    seen = _CSV_TEXTS.get(key)
    if seen is not None and seen[0] == text:
        return seen[1]
    df = _read_csv_text(file, text, header_pattern=header_pattern, separator=separator)
    if len(text) > _CSV_TEXT_MAX:
        return df
    _keep(_CSV_TEXTS, key, (text, df))
    return df


def _read_csv_text(file: LandedFile, text: str, *, header_pattern: str | None,
                   separator: str) -> pl.DataFrame:
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


def spec_table(specs: list[IndicatorSpec]) -> pl.DataFrame:
    """indicator_id/series pairs of the registry rows an adapter was given."""
    return pl.DataFrame({"indicator_id": [s.indicator_id for s in specs],
                         "series": [s.series for s in specs]},
                        schema={"indicator_id": pl.String, "series": pl.String})


def raise_cross_file_duplicates(rows: pl.DataFrame, key: list[str], source: str) -> None:
    """The same key in two files (each file is checked on its own while parsed): a clear error
    naming both, instead of one silently winning."""
    first = pl.struct("file", "row_ref").first().over(key)
    dup = rows.with_columns(first.alias("__first")).filter(
        pl.col("__first").struct.field("file") != pl.col("file")).head(1)
    if dup.height:
        r = dup.row(0, named=True)
        what = " ".join(str(r[k]) for k in key)
        raise SourceError(source, f"{what} is given in two files: {r['__first']['file']} "
                          f"({r['__first']['row_ref']}) and {r['file']} ({r['row_ref']}); keep it in one",
                          file=r["file"], row=r["row_ref"], field=key[0])


def read_csv_streamed(file: LandedFile) -> pl.DataFrame:
    """`read_csv_text(file, decode_text(file, check_content(file, "csv")))` for the user-supplied
    files (RADAR_USER_FILES: curated ITUC/TIP/WEF ratings, licensed indicators), which may be
    large: the encoding is sniffed and the rows parsed in blocks (radar_pipeline.platform.text_input), so
    the whole text is never held as bytes, str and a StringIO copy at once (a 100 MB file cost
    1.4 GB). Same refusals (empty, an HTML page, not UTF-8: SourceError naming the file) and the
    same `__line` (LINE); blank lines and unnamed columns dropped."""
    from radar_pipeline.platform.text_input import NotText, csv_blocks, scan_file

    with open(file.path, "rb") as fh:
        head = fh.read(512)
    if not head.strip():
        raise SourceError(file.source, "file is empty", file=file.name)
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        raise SourceError(file.source, f"expected csv but got an HTML/XML page (starts {head[:60]!r}) — "
                          "the publisher probably served an error page", file=file.name)
    try:
        scan_file(file.path)
        header, blocks = csv_blocks(file.path)
        frames = list(blocks)
    except NotText as exc:
        raise SourceError(file.source, str(exc).removeprefix(f"{file.path}: "), file=file.name) from None
    except (pl.exceptions.PolarsError, ValueError) as exc:  # ragged rows, a quote never closed
        raise SourceError(file.source, f"cannot parse as CSV: {str(exc).splitlines()[0]}",
                          file=file.name) from None
    names = [c for c in header if c and not c.startswith("__col")]
    if not names:
        raise SourceError(file.source, "CSV has no named columns", file=file.name)
    empty = pl.DataFrame(schema={**dict.fromkeys(names, pl.Utf8), LINE: pl.Int64})
    return pl.concat([empty, *(f.select(*names, LINE) for f in frames)], rechunk=False)


# path -> (sha256, rules key, parsed rows) of the user files parsed by this process
_PARSED: dict[str, tuple[str, object, object]] = {}


def parsed_once(file: LandedFile, parse, rules_key: object):
    """`parse(file)`, or the rows parsed before from the same content (sha256, streamed) under
    the same rules (`rules_key`, whose repr is stable: strings, numbers, tuples): a user file is
    parsed again only when it, the rules or the parser's code changed (a refresh reads it for
    every edition, every run is a new process). Kept in this process and, between processes,
    in the parse cache (`platform/parse_cache.py`). `parse` returns a frame, or (frames, frame)
    (the user adapter's blocks and rejects). An error is never cached."""
    from radar_pipeline.platform import parse_cache
    from radar_pipeline.platform.text_input import NotText, scan_file

    try:
        digest = scan_file(file.path).sha256
    except NotText as exc:
        raise SourceError(file.source, str(exc).removeprefix(f"{file.path}: "), file=file.name) from None
    hit = _PARSED.get(str(file.path))
    if hit and hit[:2] == (digest, rules_key):
        return hit[2]
    module = getattr(parse, "__module__", None) or __name__
    rules = repr(rules_key) + "|" + parse_cache.code_version(module, __name__, "radar_pipeline.platform.text_input")
    key = parse_cache.key(f"source-{file.source}", file.path, digest, rules)
    cached = parse_cache.load(key)
    rows = _unpacked(cached) if cached is not None else None
    if rows is None:
        rows = parse(file)
        parse_cache.store(key, *_packed(rows))
    _PARSED[str(file.path)] = (digest, rules_key, rows)
    return rows


def _packed(rows) -> tuple[tuple[pl.DataFrame | list[pl.DataFrame], ...], dict]:
    """A parse's result as frames for the parse cache: a frame, or (frames, frame) with the
    frames (blocks of one schema) kept as parts."""
    if isinstance(rows, pl.DataFrame):
        return (rows,), {"shape": "frame"}
    blocks, rest = rows
    return (list(blocks), rest), {"shape": "blocks+frame"}


def _unpacked(cached):
    """The parse's result from the parse cache's parts (None: not the shape expected). Blocks come
    back as parts of up to parse_cache.PART_ROWS rows: later steps work block by block."""
    frames, info = cached
    shape = info.get("shape")
    if shape == "frame" and len(frames) == 1 and frames[0]:
        return pl.concat(frames[0], rechunk=False)
    if shape == "blocks+frame" and len(frames) == 2 and frames[1]:
        return frames[0], pl.concat(frames[1], rechunk=False)
    return None
