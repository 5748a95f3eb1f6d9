"""Side files as text: the encoding sniff, the content hash and the free-text cleaning that every
side input shares (overrides, buyer lists, user indicator files, the rules folder; issue 22
items 2 and 3).

* `scan_file(path)`: one streamed pass (1 MiB blocks, so a 100 MB file costs a few MiB) that
  hashes the bytes and tells whether they are UTF-8 text (a BOM is fine). UTF-16/32, Latin-1 or
  binary are refused with a sentence naming the file and the reason, never a raw
  UnicodeDecodeError. The hash lets a reader skip a file that did not change.
* `clean_text` / `clean_text_expr`: free text as published (override reasons and authors, ...):
  control and bidirectional-override characters removed (they reach BI tools and
  spreadsheets), a formula-like start (`=cmd|...`, OWASP CSV injection) neutralised with a
  leading apostrophe. One rule, two spellings: a Python string and a polars expression built
  from the same character ranges (a test checks they agree).
"""
from __future__ import annotations

import codecs
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl


BLOCK = 1 << 20
# C0 controls except tab and line feed, DEL and C1, bidi embeddings/overrides and isolates
_CONTROL_RANGES = ((0x00, 0x08), (0x0B, 0x1F), (0x7F, 0x9F), (0x202A, 0x202E), (0x2066, 0x2069))
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PY_CONTROL = "[" + "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in _CONTROL_RANGES) + "]"
_RUST_CONTROL = "[" + "".join(f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in _CONTROL_RANGES) + "]"
_RUST_FORMULA = "^[" + "".join(f"\\x{{{ord(c):x}}}" for c in FORMULA_START) + "]"


def clean_text(text: str) -> str:
    """Control characters removed, whitespace stripped, a formula start prefixed with `'`."""
    import re

    text = re.sub(_PY_CONTROL, "", text).strip()
    return "'" + text if text.startswith(FORMULA_START) else text


def clean_text_expr(expr: pl.Expr) -> pl.Expr:
    """`clean_text` as a polars expression (null stays null)."""
    # a replace (not when/then) keeps the column's name
    return (expr.str.replace_all(_RUST_CONTROL, "").str.strip_chars()
            .str.replace(f"({_RUST_FORMULA})", "'$1"))


def clean_text_sql() -> str:
    r"""`clean_text` as a DuckDB macro `clean_text(x)` (RE2 reads the same `\x{..}` ranges), for
    the free text the publish SQL copies into BI tables (site names, override reasons)."""
    return ("create or replace temp macro clean_text(x) as regexp_replace(regexp_replace("
            f"regexp_replace(x, '{_RUST_CONTROL}', '', 'g'), '^\\s+|\\s+$', '', 'g'), "
            f"'({_RUST_FORMULA})', '''\\1')")


class NotText(ValueError):
    """A side file that is not UTF-8 text; the message names the file and why."""


@dataclass(frozen=True)
class Scan:
    sha256: str
    size: int


_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
         (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


def _problem(head: bytes, offset: int, bad: bytes | None, nul: int | None) -> str:
    for bom, name in _BOMS:
        if head.startswith(bom):
            return f"not UTF-8 text ({name} byte-order mark; save the file as UTF-8)"
    if nul is not None:
        return f"not UTF-8 text (a NUL byte at offset {nul}: a binary file, or UTF-16 without a byte-order mark)"
    return (f"not UTF-8 text (byte 0x{bad.hex()} at offset {offset}; Latin-1/Windows-1252? "
            "save the file as UTF-8)")


def scan_file(path: Path, error: type[Exception] = NotText) -> Scan:
    """Hash `path` and check it is UTF-8 text, streamed; `error(f"{path}: not UTF-8 text (...)")`
    otherwise (OSError for a file that cannot be opened or read)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    digest = hashlib.sha256()
    size, head = 0, b""
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            if not head:
                head = block[:4]
                for bom, _ in _BOMS:
                    if head.startswith(bom):
                        raise error(f"{path}: {_problem(head, 0, None, None)}")
            digest.update(block)
            nul = block.find(b"\0")
            if nul >= 0:
                raise error(f"{path}: {_problem(head, 0, None, size + nul)}")
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                at = size + exc.start  # offset of the bad byte in the file (the decoder keeps no tail here)
                raise error(f"{path}: {_problem(head, at, block[exc.start:exc.start + 1], None)}") from None
            size += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise error(f"{path}: not UTF-8 text (the file ends inside a character: truncated?)") from None
    return Scan(digest.hexdigest(), size)


def sniff_utf8(data: bytes, path: Path, error: type[Exception] = NotText) -> str:
    """The text of a small file already in memory (rule tables), refused like `scan_file`."""
    for bom, _ in _BOMS:
        if data.startswith(bom):
            raise error(f"{path}: {_problem(data[:4], 0, None, None)}")
    nul = data.find(b"\0")
    if nul >= 0:
        raise error(f"{path}: {_problem(data[:4], 0, None, nul)}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: {_problem(data[:4], exc.start, data[exc.start:exc.start + 1], None)}") from None


def file_problem(path: Path) -> str | None:
    """Why `path` is not a regular file we may read (a symlink, a folder named x.csv, a dangling
    link, no permission), as a short reason; None when it can be opened."""
    if path.is_symlink():
        return "symlink not followed (put the file itself in the folder)"
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"cannot read the file: {exc.strerror or type(exc).__name__}"
    import stat

    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if not os.access(path, os.R_OK):
        return "cannot read the file: permission denied"
    return None


CSV_BLOCK = 1 << 20  # bytes per parsed block: bounds the memory of a CSV of any size


def csv_blocks(path: Path, block: int = CSV_BLOCK, *, ragged: bool = False):
    """(header, iterator of frames) of a UTF-8 CSV (check it with `scan_file` first), read in
    blocks of about `block` bytes so a 100 MB file never sits in memory whole (polars would map
    and parse it at once: ~3x its size). Every cell is text (null = empty); `__line` is the
    editor line where the record starts, line breaks inside quoted cells counted; blank lines
    are skipped. A block ends at a line end outside quotes (an even number of `"` before it:
    a doubled quote inside a quoted cell counts twice). A quote never closed raises ValueError.

    A record with more fields than the header (extra cells that are all empty, e.g. a trailing
    comma, are dropped) raises pl.exceptions.PolarsError, or with `ragged=True` is kept with
    its first cells and a reason in the extra column `__ragged` (null on every other record),
    so the caller can quarantine that one line and use the rest: that block alone is then
    parsed again by the stdlib csv reader."""
    import csv
    import io

    import polars as pl

    with open(path, "rb") as fh:  # the header now; the rows are opened again when iterated
        first = fh.readline()
        while first.count(b'"') % 2:  # a header cell holding a line break
            more = fh.readline()
            if not more:
                raise ValueError("the header has a quote that is never closed")
            first += more
    header = [h.strip() for h in next(csv.reader(io.StringIO(first.decode("utf-8-sig"))), [])]
    schema = {name or f"__col{i}": pl.Utf8 for i, name in enumerate(header)}

    def frames():
        line = 1 + first.count(b"\n")
        carry = b""
        with open(path, "rb") as fh:
            fh.seek(len(first))
            while True:
                data = fh.read(block)
                data, done = carry + data, not data
                if done:
                    cut = len(data)
                    if data.count(b'"') % 2:
                        raise ValueError(f"a quote opened near line {line} is never closed (file truncated?)")
                else:
                    cut, quotes = data.rfind(b"\n") + 1, None
                    while cut > 0:
                        quotes = data.count(b'"', 0, cut) if quotes is None else quotes
                        if quotes % 2 == 0:
                            break
                        prev = data.rfind(b"\n", 0, cut - 1) + 1
                        quotes -= data.count(b'"', prev, cut)
                        cut = prev
                if cut <= 0 and not done:  # no safe line end in the block yet: read on
                    carry = data
                    continue
                chunk, carry = data[:cut], data[cut:]
                if chunk.strip():
                    try:
                        frame = pl.read_csv(chunk, has_header=False, schema=schema, infer_schema=False,
                                            raise_if_empty=False, missing_columns="insert")
                    except pl.exceptions.PolarsError:  # a record with more fields than the header
                        frame = _python_block(chunk, line, list(schema))
                        if not ragged and frame["__ragged"].is_not_null().any():
                            raise
                        if not ragged:
                            frame = frame.drop("__ragged")
                    else:
                        breaks = pl.sum_horizontal(pl.col(c).str.count_matches("\n").fill_null(0)
                                                   for c in schema).cast(pl.Int64)
                        frame = frame.with_columns((pl.lit(line, pl.Int64) + breaks.cum_sum() - breaks
                                                    + pl.int_range(pl.len(), dtype=pl.Int64)).alias("__line"))
                        if ragged:
                            frame = frame.with_columns(__ragged=pl.lit(None, pl.Utf8))
                    yield frame.filter(pl.any_horizontal(pl.col(c).is_not_null() for c in schema))
                line += chunk.count(b"\n")
                if done:
                    return

    return header, frames()


def _python_block(chunk: bytes, line: int, names: list[str]) -> pl.DataFrame:
    """One block that polars refused (a record with more fields than the header), read by the
    stdlib csv reader: the columns of `names` (empty cell = null), `__line` (the editor line
    where each record starts, `line` being the block's first) and `__ragged` (why a record has
    too many fields; null when its extra cells, if any, are all empty)."""
    import csv
    import io

    import polars as pl

    n = len(names)
    cols: list[list[str | None]] = [[] for _ in range(n)]
    lines: list[int] = []
    ragged: list[str | None] = []
    reader = csv.reader(io.StringIO(chunk.decode("utf-8"), newline=""))
    done = 0  # physical lines consumed before the current record
    for record in reader:
        start, done = line + done, reader.line_num
        if not any(record):  # a blank line
            continue
        extra = [c for c in record[n:] if c.strip()]
        ragged.append(f"{len(record)} fields, the header has {n} (extra cell {extra[0][:40]!r})" if extra else None)
        lines.append(start)
        for i in range(n):
            cols[i].append(record[i] if i < len(record) and record[i] != "" else None)
    return pl.DataFrame({**{name: pl.Series(name, c, pl.Utf8) for name, c in zip(names, cols)},
                         "__line": pl.Series("__line", lines, pl.Int64),
                         "__ragged": pl.Series("__ragged", ragged, pl.Utf8)})
