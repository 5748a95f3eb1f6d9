"""The native intake of `radar score`: a whole file checked by msgspec and read by DuckDB, its
validation as column expressions (issue 24 item 2). `radar score` of 1M sites spent ~21 s of CPU in
the fast path (orjson ~5 µs a line, its Python checks ~8, the column-wise frames ~8); here msgspec
checks a line's shape in ~5 µs without building columns, and DuckDB's JSON reader builds them on
every core (~1.3 s for 1M sites).

Two readers, each doing what it does strictly:
- msgspec (`check_bytes`, in the intake's worker processes when there are any) decodes every line
  into Structs generated from rules/saq_fields.csv with unknown fields forbidden: a line that is
  not strict JSON (a trailing comma, NaN, a BOM, a control character, bad UTF-8), has a key the
  format does not know (at any level), a value of the wrong JSON type (`true` for a number, 1 for
  a boolean, a number for a string) or a missing required key fails. msgspec keeps the last of a
  repeated key; DuckDB's reader refuses it.
- DuckDB (sql/intake/read_sites.sql) reads the file with those types declared. Its reader would
  coerce a value of the wrong type ("12" into a number) or drop an unknown key, which is why it
  only reads what msgspec has checked; a repeated key or malformed line stops it.
Then the rules that depend on values (sql/intake/check_sites.sql and the per-question checks built
here from saq_fields.csv): the id rule, ranges, whole numbers, allowed answers, the controls
catalogue, severities and statuses, dates and their order, a finding's id once per site, list
sizes, a site_id once per file; countries and ISIC codes are resolved by the fast path's own
function (fields._resolve_sites) on the distinct values, and dates are read by a SQL macro only
when it reads every distinct date string of the file as the fast path's polars parse does. So an
accepted site's rows are the fast path's, value for value and in the same order
(test_intake_native.py compares the two on valid files and on each kind of invalid line).

All or nothing: the sites are loaded only when every line passes. Otherwise nothing is loaded,
`load` returns None, and the caller reads the file with the line-exact reader (reader.py), which
alone writes rejects naming line, field and reason; a file with rejects costs this intake's time on
top (1.4 s at 200k sites: 6.9 s instead of 5.5). A blank line also leaves the file to that reader: DuckDB's reader skips
it, and its record numbers would no longer be line numbers."""
from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from radar_pipeline.platform import settings
from radar_pipeline.platform.warehouse import sql_literal
from radar_pipeline.sites.intake.fields import (
    AUDIT_KEYS,
    MAX_ITEMS,
    MAX_KEYS,
    MAX_LINE_BYTES,
    SEVERITIES,
    STATUSES,
    _resolve_sites,
    saq_specs,
)

if TYPE_CHECKING:
    import duckdb
    import polars as pl

SQL = settings.SQL_DIR / "intake"
# the DuckDB type each kind of answer is read as (integers as DOUBLE: checked whole and in range,
# then BIGINT, as fast_frames does), and the Python types msgspec accepts for it
_DUCKDB_TYPES = {"boolean": "BOOLEAN", "number": "DOUBLE", "integer": "DOUBLE", "enum": "VARCHAR", "text": "VARCHAR"}


def _python_type(kind: str):
    return {"boolean": bool, "number": int | float, "integer": int | float}.get(kind, str)


@functools.lru_cache(maxsize=4)
def _decoder(questions: tuple[tuple[str, str], ...]):
    """msgspec's decoder of one site line, for the questionnaire `questions` ((field, type), ...)."""
    import msgspec

    saq = msgspec.defstruct("Saq", [(f, _python_type(t) | None, None) for f, t in questions],
                            forbid_unknown_fields=True, gc=False)
    audit = msgspec.defstruct("Audit", [("nc_id", str), ("severity", str), ("status", str),
                                        ("raised_on", str | None, None), ("closed_on", str | None, None)],
                              forbid_unknown_fields=True, gc=False)
    site = msgspec.defstruct("Site", [("site_id", str), ("country", str), ("isic", str),
                                      ("site_name", str | None, None), ("saq", saq | None, None),
                                      ("controls", list[str] | None, None), ("audits", list[audit] | None, None)],
                             forbid_unknown_fields=True, gc=False)
    return msgspec.json.Decoder(site)


def check_lines(lines, questions: tuple[tuple[str, str], ...]) -> tuple[int, int, int]:
    """(lines, blank lines, lines that fail msgspec's check) of `lines` ((number, body or None when
    over the size cap, size), as reader._iter_lines gives them)."""
    import msgspec

    decode = _decoder(questions).decode
    n = blank = failed = 0
    for _, body, _ in lines:
        n += 1
        if body is None:
            failed += 1
        elif not body or body.isspace():
            blank += 1
        else:
            try:
                decode(body)
            except msgspec.DecodeError:  # ValidationError is one
                failed += 1
    return n, blank, failed


# bytes of the file a worker checks at once (native.pieces): a piece is read whole
PIECE_BYTES = 32 << 20


def pieces(path: Path, piece_bytes: int | None = None,
           span: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """The file (or its bytes `span`, starting at a line's start: a split_parts part) as (start, end)
    byte ranges of about `piece_bytes` (PIECE_BYTES), each starting at a line's start: a cut moved
    to just after the next newline (a line belongs to the piece it starts in)."""
    piece_bytes = piece_bytes or PIECE_BYTES
    first, size = span or (0, path.stat().st_size)
    cuts = [first]
    with open(path, "rb") as fh:
        for at in range(first + piece_bytes, size, piece_bytes):
            if at <= cuts[-1]:
                continue
            fh.seek(at - 1)
            while (chunk := fh.read(1 << 16)) and (nl := chunk.find(b"\n")) < 0:
                pass
            if not chunk:
                break
            cut = fh.tell() - len(chunk) + nl + 1
            if cut < size:
                cuts.append(cut)
    return list(zip(cuts, [*cuts[1:], size]))


def check_bytes(data: bytes, questions: tuple[tuple[str, str], ...]) -> tuple[int, int, int]:
    """check_lines over the lines of `data`, the same counts, without reader._iter_lines' generator:
    at 1M sites its per-line tuples and the checks made before the decode were ~2.8 µs of the
    ~6 µs a line cost (issue 24). A line is decoded as split; only when that fails is it looked at
    again (a blank or whitespace-only line is blank, as check_lines counts it). A trailing CR is
    JSON whitespace, so decoding the line with it or without it gives the same answer; the size
    cap is _iter_lines': a line with its newline over MAX_LINE_BYTES + 1 bytes, or over
    MAX_LINE_BYTES without its CRs (without a newline, the last line: over MAX_LINE_BYTES)."""
    import msgspec

    decode = _decoder(questions).decode
    cap = MAX_LINE_BYTES
    lines = data.split(b"\n")
    last = lines.pop()  # after the last newline: empty, or a last line without one
    blank = failed = 0
    for part in lines:
        if len(part) > cap and (len(part) > cap + 1 or len(part.rstrip(b"\r")) > cap):
            failed += 1
            continue
        try:
            decode(part)
        except msgspec.DecodeError:  # ValidationError is one
            body = part.rstrip(b"\r")
            if not body or body.isspace():
                blank += 1
            else:
                failed += 1
    if not last:
        return len(lines), blank, failed
    if len(last) > cap:
        return len(lines) + 1, blank, failed + 1
    n, b, f = check_lines([(0, last.rstrip(b"\r"), 0)], questions)
    return len(lines) + n, blank + b, failed + f


def check_piece(fh, start: int, end: int, questions: tuple[tuple[str, str], ...]) -> tuple[int, int, int]:
    """check_bytes over bytes start..end of the open file `fh` (native.pieces)."""
    fh.seek(start)
    return check_bytes(fh.read(end - start), questions)


def added(counts) -> tuple[int, int, int]:
    """The (lines, blank, failed) counts of several pieces (check_piece), added up."""
    lines = blank = failed = 0
    for n, b, f in counts:
        lines, blank, failed = lines + n, blank + b, failed + f
    return lines, blank, failed


def check_file(path: Path, questions: tuple[tuple[str, str], ...],
               span: tuple[int, int] | None = None) -> tuple[int, int, int]:
    """check_bytes over the whole file, or its bytes `span` (a split_parts part), here (a file too
    small for worker processes)."""
    with open(path, "rb") as fh:
        return added(check_piece(fh, start, end, questions) for start, end in pieces(path, span=span))


def check(pool, path: Path, questions: tuple[tuple[str, str], ...],
          span: tuple[int, int] | None = None) -> tuple[int, int, int]:
    """check_file in the IntakePool `pool`'s workers when there is one, else here."""
    return pool.check(questions, span) if pool is not None else check_file(path, questions, span)


@dataclass(frozen=True)
class Part:
    """Lines of a file too big to load at once, copied to a file of their own (split_parts)."""
    path: Path  # the copy
    start: int  # its bytes in the file: start..end
    end: int
    first_line: int  # the file's lines before it
    lines: int


def split_parts(path: Path, max_lines: int, folder: Path, block_bytes: int = 64 << 20) -> Iterator[Part]:
    """The file `path` as consecutive parts of at most `max_lines` lines, each copied to a file in
    `folder` when the caller asks for the next one (one part on disk at a time if the caller deletes
    each before that). A part ends just after a newline, or at the end of the file; its lines are
    counted as check_bytes counts them (a last line without newline is one).
    Why copies: DuckDB's JSON reader reads whole files, and `radar score` keeps to a batch of
    RADAR_SCORE_BATCH_SITES (1M) sites at a time (~1.3 GiB; 3M read at once would take ~3 GiB).
    The newlines are counted in one reused buffer and the bytes copied by the kernel
    (os.copy_file_range): a part of 1M sites took 2.5 s read and written through Python, ~1 s so."""
    import numpy as np

    size = path.stat().st_size
    buffer = np.empty(min(block_bytes, max(size, 1)), dtype=np.uint8)
    with open(path, "rb", buffering=0) as src:
        start = first_line = k = 0
        while start < size:
            end, lines, last = start, 0, 10
            src.seek(start)
            while end < size and lines < max_lines:
                block = buffer[:src.readinto(buffer)]
                if not len(block):
                    raise OSError(f"{path}: ended at byte {end} of {size} while being read")
                is_newline = block == 10
                newlines = int(np.count_nonzero(is_newline))
                if lines + newlines >= max_lines:  # the part ends in this block
                    cut = int(np.flatnonzero(is_newline)[max_lines - lines - 1]) + 1
                    end, lines, last = end + cut, max_lines, 10
                else:
                    end, lines, last = end + len(block), lines + newlines, int(block[-1])
            lines += last != 10  # the file's last line, without newline
            copy = folder / f"part_{k:05d}.jsonl"
            _copy_range(src, copy, start, end - start)
            yield Part(copy, start, end, first_line, lines)
            start, first_line, k = end, first_line + lines, k + 1


def _copy_range(src, dest: Path, offset: int, count: int) -> None:
    """`count` bytes of the open file `src` from `offset` into a new file `dest`: by the kernel where
    it can (Linux), else through a buffer."""
    import os

    with open(dest, "wb", buffering=0) as dst:
        copied = 0
        try:
            while copied < count and (n := os.copy_file_range(src.fileno(), dst.fileno(), count - copied,
                                                               offset + copied)):
                copied += n
        except (AttributeError, OSError):  # none here (macOS, some file systems): through Python
            dst.seek(0)
            dst.truncate()
            src.seek(offset)
            copied = 0
            while copied < count and (chunk := src.read(min(count - copied, 16 << 20))):
                view = memoryview(chunk)
                while view:  # an unbuffered write may take part of it
                    view = view[dst.write(view):]
                copied += len(chunk)
        if copied != count:
            raise OSError(f"{dest}: copied {copied} of {count} bytes of {src.name}")


def fits(path: Path, max_sites: int) -> bool:
    """Whether the file looks like at most `max_sites` lines (from its first MiB's line length): the
    native intake loads the whole file at once, so a bigger one keeps the chunked path's batches."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    if not head:  # an empty file: no sites, the scores' header
        return True
    per_line = len(head) / max(head.count(b"\n"), 1)
    return size / per_line <= max_sites * 1.1


def questions_of(saq_fields: pl.DataFrame) -> tuple[tuple[str, str], ...]:
    return tuple(saq_fields.select("field", "type").iter_rows())


def _run_file(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute((SQL / f"{name}.sql").read_text(encoding="utf-8"))


def _list(values) -> str:
    return "[" + ", ".join(sql_literal(v) for v in values) + "]::varchar[]"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(specs: list[tuple]) -> str:
    """read_json's `columns` for the file (a STRUCT literal): the questionnaire as one STRUCT."""
    saq = ", ".join(f"{_ident(f)} {_DUCKDB_TYPES.get(t, 'VARCHAR')}" for f, t, *_ in specs)
    audits = ", ".join(f"{k} VARCHAR" for k in AUDIT_KEYS)
    cols = {"site_id": "VARCHAR", "site_name": "VARCHAR", "country": "VARCHAR", "isic": "VARCHAR",
            "saq": f"STRUCT({saq})", "controls": "VARCHAR[]", "audits": f"STRUCT({audits})[]"}
    return "{" + ", ".join(f"{sql_literal(k)}: {sql_literal(v)}" for k, v in cols.items()) + "}"


def _question_checks(specs: list[tuple]) -> str:
    """A line's answers that break their question's rule (the fast path's, fast_frames): ranges,
    whole numbers, allowed values; as one SQL condition (false when none)."""
    wrong = []
    for field, kind, lo, hi, allowed in specs:
        v = f"saq.{_ident(field)}"
        if kind == "enum":
            wrong.append(f"not list_contains({_list(allowed or [])}, {v})")
        elif kind in ("number", "integer"):
            wrong.append(f"not isfinite({v})")
            if lo is not None:
                wrong.append(f"{v} < {float(lo)!r}")
            if hi is not None:
                wrong.append(f"{v} > {float(hi)!r}")
            if kind == "integer":  # whole, and exact as a double: then BIGINT
                wrong.append(f"{v} != floor({v}) or abs({v}) >= 1e15")
        elif kind != "boolean":  # a kind the fast path leaves to the exact path: any answer does here too
            wrong.append(f"{v} is not null")
    return " or ".join(f"coalesce({w}, false)" for w in wrong) or "false"


def read_statement(con: duckdb.DuckDBPyConnection, path: Path, specs: list[tuple]) -> str:
    """The statement that reads `path` into the temp table intake_read (sql/intake/read_sites.sql,
    with the answers' rules checked as the rows are read: one pass, on every core), its variables
    set on `con`. `load` runs it while msgspec checks the lines; bench_cli_score.py --parts alone."""
    con.execute(f"set variable intake_file = {sql_literal(path)}")
    con.execute(f"set variable intake_columns = {_columns(specs)}")
    read = (SQL / "read_sites.sql").read_text(encoding="utf-8")
    return (f"create or replace temp table intake_read as select *, {_question_checks(specs)} "
            f"as answers_break_rules from ({read})")


def load(con: duckdb.DuckDBPyConnection, path: Path, *, countries: set[str], isic: pl.DataFrame,
         controls: set[str], saq_fields: pl.DataFrame, check, max_sites: int,
         file_name: str | None = None, first_line: int = 0) -> int | None:
    """Load every site of `path` into the (empty) site tables of `con`, `radar score`'s in-memory
    scoring connection — sites, site_saq, site_nonconformities, and site_controls as a view over the
    file's rows (load_sites.sql) — as the line-exact reader would, and return their number; or load
    nothing and return None when any line is one this intake does not accept.
    `check()` runs msgspec's check of every line (check_bytes, here or in worker processes) and
    returns (lines, blank lines, failed lines): it is called while DuckDB reads the file in a
    thread. None as well when the file has more than `max_sites` lines.
    `file_name`, `first_line`: when `path` is a part of a bigger file (split_parts), that file's
    name and the number of its lines before the part (the sites' source_file and source_line)."""
    import duckdb

    specs = saq_specs(saq_fields)
    read = read_statement(con, path, specs)
    con.execute(f"set variable intake_controls = {_list(sorted(controls))}")
    con.execute(f"set variable intake_limits = {{'items': {MAX_ITEMS}, 'finding_keys': {MAX_KEYS * 10}}}")
    con.execute(f"set variable intake_severities = {_list(SEVERITIES)}")
    con.execute(f"set variable intake_statuses = {_list(STATUSES)}")
    failure: list[BaseException] = []

    def read_file() -> None:  # DuckDB releases the GIL: msgspec checks the lines meanwhile
        try:
            con.execute(read)
        except duckdb.Error as exc:  # a repeated key, a malformed line: the line-exact reader names it
            failure.append(exc)

    loaded = None
    reader = threading.Thread(target=read_file, name="radar-native-read")
    reader.start()
    try:
        try:
            n_lines, blank, failed = check()
        except BaseException:  # Ctrl-C, a worker lost: DuckDB's read is stopped rather than waited for
            con.interrupt()
            raise
        finally:
            reader.join()
        # a read that finished before the interrupt left intake_read: the finally below drops it
        if failure or blank or failed or n_lines > max_sites:
            return None
        # each row's line: its rowid (the file's order, kept by the read), + 1
        con.execute(f"create or replace temp view intake_lines as select rowid + {int(first_line) + 1} as line, * "
                    "from intake_read")
        _run_file(con, "intake_date")
        n, bad = con.execute("select count(*), count(*) filter (where answers_break_rules) from intake_read").fetchone()
        if n != n_lines or bad:
            return None
        _run_file(con, "check_sites")
        if con.sql("select count(*) from intake_bad").fetchone()[0]:
            return None
        if not _resolve(con, countries, isic):
            return None
        _insert(con, file_name or path.name, specs)
        loaded = n
        return n
    finally:
        # on success intake_read stays: site_controls is a view over it (load_sites.sql)
        con.execute("drop view if exists intake_lines")
        kept = ("intake_read",) if loaded is not None else ()
        for table in ("intake_read", "intake_bad", "intake_places"):
            if table not in kept:
                con.execute(f"drop table if exists {table}")


def _resolve(con: duckdb.DuckDBPyConnection, countries: set[str], isic: pl.DataFrame) -> bool:
    """Countries and ISIC codes resolved as the fast path resolves them (fields._resolve_sites, on
    the distinct pairs: a few thousand); False when a line's country or ISIC code is not known, a
    finding's date is not one, or the intake_date macro would read a date string otherwise than the
    fast path's polars parse (the line-exact reader decides those)."""
    import polars as pl

    pairs = con.sql("select distinct country, isic from intake_lines").fetchall()
    places = _resolve_sites(pl.DataFrame(pairs, schema={"country": pl.Utf8, "isic": pl.Utf8}, orient="row"),
                            isic, {})
    known = places.filter(pl.col("iso3").is_in(sorted(countries)) & pl.col("isic_level").is_not_null())
    if known.height != places.height:
        return False
    # the dates: intake_date (SQL) must read every distinct date string as the fast path's polars parse
    dates = con.sql("""select distinct d as text, intake_date(d) as day from (
                           select unnest([f.raised_on, f.closed_on]) as d
                           from (select unnest(audits) as f from intake_lines))
                       where d is not null""").fetchall()
    parsed = pl.DataFrame(dates, schema={"text": pl.Utf8, "day": pl.Date}, orient="row").with_columns(
        pl.col("text").str.to_date("%Y-%m-%d", strict=False).alias("polars_day"))
    if parsed.filter(pl.col("day").is_null() | pl.col("polars_day").is_null()
                     | (pl.col("day") != pl.col("polars_day"))).height:
        return False
    # through a Parquet file, not con.register: DuckDB scans a registered polars frame through
    # pyarrow.dataset, whose first import (pandas under it) cost `radar score` ~1.2 s of its 1M-site
    # run, on the critical path; nothing else in the native path needs them
    import tempfile

    with tempfile.TemporaryDirectory(prefix="radar-places-") as tmp:
        places_file = Path(tmp) / "places.parquet"
        known.select("country", "isic", "iso3", "isic_code", "isic_level").write_parquet(places_file)
        con.execute("create or replace temp table intake_places as select * from "
                    f"read_parquet({sql_literal(places_file)})")
    _run_file(con, "check_dates")
    return not con.sql("select count(*) from intake_bad").fetchone()[0]


def _insert(con: duckdb.DuckDBPyConnection, file_name: str, specs: list[tuple]) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC).replace(tzinfo=None)  # as _load_parts stamps the sites it loads
    con.execute(f"set variable intake_file_name = {sql_literal(file_name)}")
    con.execute(f"set variable intake_now = timestamp '{now.isoformat()}'")
    _run_file(con, "load_sites")
    if specs:  # site_saq: one row per site with at least one answer, one column per question
        cols = [f"saq.{_ident(f)}" + ("::bigint" if t == "integer" else "") + f" as {_ident(f)}"
                for f, t, *_ in specs]
        any_answer = " or ".join(f"saq.{_ident(f)} is not null" for f, *_ in specs)
        con.execute(f"insert into site_saq by name select site_id, {', '.join(cols)} from intake_lines "
                    f"where {any_answer} order by line")
