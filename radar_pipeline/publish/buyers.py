"""Buyer -> site lists: which sites each buyer sees in its own published file.

Files in RADAR_BUYERS_INBOX (default data/buyers): `*.csv` with a header
`buyer_id,site_id` or `*.jsonl` with one `{"buyer_id": ..., "site_id": ...}`
per line. The folder is the source of truth: every load replaces the
warehouse tables `buyer_sites` and `buyer_site_rejects` as a whole, so removing
a line (or a file) takes the site away from the buyer at the next publish.

Rows whose buyer or site id breaks the identifier rule (radar_pipeline/platform/identifiers.py:
1-64 characters of `A-Z a-z 0-9 . _ -`, not only dots, no trailing newline), or is
missing, or whose line is unreadable or has more fields than the header, are rejected with a
reason (file and line); the other rows of the file are used. Site ids the
warehouse does not know are kept (the buyer's list may arrive before the site data)
and reported. Symlinks in the folder are not followed (a link could point at any file
on the server, whose lines would then be echoed into reject reasons): each is one
reject row naming only the link.

A load (`load`) reads the folder block by block into Parquet files in a scratch folder (temp
folder, safe_paths), then, in one transaction, replaces buyer_sites with the first line of each
(buyer_id, site_id) — a min() per slice of the pairs, so DuckDB's hash table holds one slice —
and the rejects, and records the folder's content hash in side_input_loads: any later process
finds the folder unchanged there and does not read it again. buyer_sites declares its key
(buyer_id, site_id) without an index (`key_indexed=False`: the in-memory index cost 1.6-1.8 GiB
for a 100 MB list): one row per pair holds by construction.

Each buyer's published file is `buyers/<name>.duckdb` (its Parquet: `buyers/<name>/parquet/`,
its snapshots: `.snapshots/buyer-<name>/`), `<name>` = `buyer_file_name(buyer_id)`:

* an ordinary id — only lowercase letters, digits, `-` and `_` — is its own name: `acme-eu`
  -> `acme-eu.duckdb`;
* any other id (capitals, dots) is written as itself, leading dots as `_` (no hidden files),
  followed by `~` and a hex bit mask of the positions of its capitals and leading dots (bit i
  = character i, from 0): `Acme` -> `Acme~1.duckdb`, `ACME` -> `ACME~f.duckdb`, `acme.duckdb`
  -> `acme.duckdb~0.duckdb`, `.x` -> `_x~1.duckdb`.

Why: the mapping must be one-to-one even where the file system ignores case (macOS, Windows
shares), so that two buyers can never share a file (`Acme` and `acme` would, as would `acme`'s
file and the folder of a buyer `acme.duckdb`). `~` never occurs in an id, so escaped names never
meet ordinary ones; lowercased, a name still gives back its id (the mask says which letters
were capitals and which `_` were dots); names of ordinary ids contain no dot and escaped ones
end in hex digits, so no folder `<name>` is ever some file `<name>.duckdb`. Every name is at
most 81 characters (64 + `~` + 16), so the file, its temp names and the snapshot folder stay
far below the 255-byte limit. Ordinary ids keep the name they always had. Inside every file,
`publish_info.scope` is `buyer:<buyer_id>`.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from radar_pipeline.platform import settings
from radar_pipeline.platform.identifiers import ID_RULE, SHOWN_CHARS, id_expr, id_problem, is_id
from radar_pipeline.platform.lazy import lazy_attributes
from radar_pipeline.platform.processes import remove_left_by_dead
from radar_pipeline.platform.safe_paths import checked, make_dirs, remove_leftover
from radar_pipeline.platform.text_input import NotText, csv_blocks, file_problem, scan_file
from radar_pipeline.platform.warehouse import in_transaction, sql_literal

if TYPE_CHECKING:
    import polars as pl

MAX_LINE_BYTES = 1 << 16
# bytes of CSV per parsed block: polars keeps what a block took after it is gone, so the block
# size sets the reader's share of the load (100 MB list: 1 MiB +71-79 MiB, 256 KiB +39-44 MiB and
# no slower; 64 KiB +35 MiB but 1.7x slower)
CSV_BLOCK = 256 << 10
UNKNOWN_SHOWN = 1000  # unknown (buyer, site) pairs returned by load(); all are counted (n_unknown)


# polars dtypes, built on first use: the definitions load without polars (issue 24 item 3)
@functools.cache
def row_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {"buyer_id": pl.Utf8, "site_id": pl.Utf8, "source_file": pl.Utf8, "source_line": pl.Int64}


@functools.cache
def reject_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {"file": pl.Utf8, "line": pl.Int64, "buyer_id": pl.Utf8, "site_id": pl.Utf8, "reason": pl.Utf8}


__getattr__ = lazy_attributes(__name__, ROW_SCHEMA=row_schema, REJECT_SCHEMA=reject_schema)


@dataclass
class BuyerLoad:
    files: list[str]
    rows: pl.DataFrame | None  # read_folder: every row kept; load(): None (streamed into buyer_sites)
    rejects: pl.DataFrame
    # (buyer_id, site_id) of listed sites the warehouse does not know: the first UNKNOWN_SHOWN in
    # order, and how many there are (a list sent before its sites: millions of tuples otherwise)
    unknown_sites: list[tuple[str, str]] = field(default_factory=list)
    n_unknown: int = 0
    n_rows: int = 0
    buyer_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.rows is not None:
            self.n_rows, self.buyer_ids = self.rows.height, sorted(set(self.rows["buyer_id"].to_list()))

    @property
    def buyers(self) -> list[str]:
        return self.buyer_ids


_ORDINARY = re.compile(r"[a-z0-9_-]+")
_MASK = re.compile(r"0|[1-9a-f][0-9a-f]{0,15}")


def buyer_file_name(buyer_id: str) -> str:
    """The name of a buyer's file (without `.duckdb`) and folders: see the module docstring."""
    problem = id_problem("buyer_id", buyer_id)
    if problem:
        raise ValueError(f"refusing to derive a file name from an invalid id: {problem}")
    if _ORDINARY.fullmatch(buyer_id):
        return buyer_id
    lead = len(buyer_id) - len(buyer_id.lstrip("."))
    mask = sum(1 << i for i, c in enumerate(buyer_id) if i < lead or c.isupper())
    return "_" * lead + buyer_id[lead:] + f"~{mask:x}"


def buyer_id_of(name: str) -> str | None:
    """The buyer id whose file name (without `.duckdb`) is `name`; None for a name
    `buyer_file_name` never gives (a file publish did not write)."""
    if "~" not in name:
        return name if _ORDINARY.fullmatch(name) and is_id(name) else None
    shown, _, mask = name.rpartition("~")
    if not _MASK.fullmatch(mask):
        return None
    bits = int(mask, 16)
    candidate = "".join("." if c == "_" and bits >> i & 1 else c for i, c in enumerate(shown))
    return candidate if is_id(candidate) and buyer_file_name(candidate) == name else None


def _shown(value: object) -> str | None:
    return None if value is None else str(value)[:80]


def _id_problem_expr(name: str, col: pl.Expr) -> pl.Expr:
    """identifiers.id_problem for a text column (the CSV reader: every cell is text)."""
    import polars as pl

    return (pl.when(col.is_null() | (col == "")).then(pl.lit(f"{name} is missing"))
              .when(~id_expr(col)).then(pl.format(f"{name} '{{}}' does not match the id rule ({ID_RULE})",
                                                  col.str.slice(0, SHOWN_CHARS))))


def _rows_frame(rows: list[tuple]) -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame(rows, schema=row_schema(), orient="row")


def _rejects_frame(rejects: list[dict]) -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame(rejects, schema=reject_schema())


def _csv_blocks(path: Path):
    """(rows, rejects) per block of a CSV list, checked with polars expressions."""
    import polars as pl

    name = path.name
    header, blocks = csv_blocks(path, CSV_BLOCK, ragged=True)  # a line with too many fields: that line rejected
    if "buyer_id" not in header or "site_id" not in header:
        yield _rows_frame([]), _rejects_frame([{"file": name, "line": 1, "buyer_id": None, "site_id": None,
                                                "reason": f"header must have buyer_id and site_id, got {header}"}])
        return
    for frame in blocks:
        frame = frame.select(pl.col("buyer_id").str.strip_chars().replace("", None),
                             pl.col("site_id").str.strip_chars().replace("", None), "__line", "__ragged")
        reason = pl.concat_str(pl.col("__ragged"), _id_problem_expr("buyer_id", pl.col("buyer_id")),
                               _id_problem_expr("site_id", pl.col("site_id")), separator="; ", ignore_nulls=True)
        frame = frame.with_columns(_reason=reason)
        ok = pl.col("_reason").is_null() | (pl.col("_reason") == "")
        yield (frame.filter(ok).select("buyer_id", "site_id", source_file=pl.lit(name),
                                       source_line=pl.col("__line")).cast(row_schema()),
               frame.filter(~ok).select(file=pl.lit(name), line=pl.col("__line"),
                                        buyer_id=pl.col("buyer_id").str.slice(0, 80),
                                        site_id=pl.col("site_id").str.slice(0, 80),
                                        reason=pl.col("_reason")).cast(reject_schema()))


FLUSH_LINES = 50_000  # JSON lines per block: the Python objects of one block at most


def _jsonl_blocks(path: Path):
    """(rows, rejects) per block of a JSON Lines list: each line is parsed and judged alone."""
    name = path.name
    rows: list[tuple] = []
    rejects: list[dict] = []
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            if raw.strip():
                _judge_json_line(name, n, raw, rows, rejects)
            if n % FLUSH_LINES == 0:
                yield _rows_frame(rows), _rejects_frame(rejects)
                rows, rejects = [], []
    yield _rows_frame(rows), _rejects_frame(rejects)


def _judge_json_line(name: str, n: int, raw: bytes, rows: list, rejects: list) -> None:
    def reject(reason: str, buyer_id: object = None, site_id: object = None) -> None:
        rejects.append({"file": name, "line": n, "buyer_id": _shown(buyer_id), "site_id": _shown(site_id),
                        "reason": reason})
    if len(raw) > MAX_LINE_BYTES:
        return reject(f"line longer than {MAX_LINE_BYTES} bytes")
    try:
        rec = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return reject(f"not valid JSON: {exc}"[:200])
    if not isinstance(rec, dict):
        return reject("line is not a JSON object")
    buyer_id, site_id = rec.get("buyer_id"), rec.get("site_id")
    problems = [p for p in (id_problem("buyer_id", buyer_id), id_problem("site_id", site_id)) if p]
    if problems:
        return reject("; ".join(problems), buyer_id, site_id)
    rows.append((buyer_id, site_id, name, n))


def _file_blocks(path: Path):
    """(rows, rejects) blocks of one buyer file: a CSV that is not UTF-8 text or cannot be parsed
    as CSV is one reject naming the file and why; JSON Lines are judged line by line."""
    import polars as pl

    def whole_file(reason: str):
        return _rows_frame([]), _rejects_frame([{"file": path.name, "line": None, "buyer_id": None,
                                                 "site_id": None, "reason": reason}])
    if path.suffix.lower() != ".csv":
        yield from _jsonl_blocks(path)
        return
    try:
        scan_file(path)  # streamed UTF-8 check: a Latin-1 or UTF-16 list is refused, not mangled
        yield from _csv_blocks(path)
    except NotText as exc:
        yield whole_file(str(exc).removeprefix(f"{path}: "))
    except (pl.exceptions.PolarsError, ValueError) as exc:  # ragged rows, a quote never closed
        yield whole_file("cannot parse as CSV: " + str(exc).splitlines()[0][:200])


def _folder_blocks(folder: Path, files: list[str]):
    """(rows, rejects) blocks of every *.csv / *.jsonl in the folder, by name; `files` collects
    the names read. Symlinks, folders and unreadable files are one reject each."""
    folder = Path(folder)
    candidates = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".csv", ".jsonl")) \
        if folder.is_dir() else []
    for path in candidates:
        reason = file_problem(path)
        if reason is None:
            try:
                yield from _file_blocks(path)
                files.append(path.name)
                continue
            except OSError as exc:  # unreadable (permissions, vanished): the other files still load
                reason = f"cannot read the file: {exc.strerror or type(exc).__name__}"
        yield _rows_frame([]), _rejects_frame([{"file": path.name, "line": None, "buyer_id": None,
                                                "site_id": None, "reason": reason}])


def read_folder(folder: Path) -> BuyerLoad:
    """Every row in memory (small lists, tests); `load` streams into the warehouse instead."""
    import polars as pl

    files: list[str] = []
    rows, rejects = [_rows_frame([])], [_rejects_frame([])]
    for r, j in _folder_blocks(folder, files):
        rows.append(r)
        rejects.append(j)
    frame = pl.concat(rows, rechunk=False).unique(["buyer_id", "site_id"], keep="first", maintain_order=True)
    return BuyerLoad(files, frame, pl.concat(rejects))


def _folder_state(folder: Path) -> str:
    """sha256 over the names and bytes of the folder's list files (links: their target text),
    streamed: what decides whether the inbox changed since the last load."""
    digest = hashlib.sha256()
    if Path(folder).is_dir():
        for path in sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".csv", ".jsonl")):
            digest.update(path.name.encode() + b"\0")
            if path.is_symlink() or not path.is_file():
                digest.update(f"<{os.readlink(path) if path.is_symlink() else 'not a file'}>".encode())
                continue
            try:
                with open(path, "rb") as fh:
                    while block := fh.read(1 << 20):
                        digest.update(block)
            except OSError as exc:
                digest.update(f"<{exc.strerror}>".encode())
    return digest.hexdigest()


def _recorded_load(con: duckdb.DuckDBPyConnection, folder: Path, state: str, stored: int) -> BuyerLoad | None:
    """The result of an earlier load of this folder into this warehouse, rebuilt from the tables it
    wrote, when the folder's bytes are the ones it read (side_input_loads) and buyer_sites still
    holds what it stored; else None (read the folder)."""
    # literals, not bound parameters: binding makes duckdb import pandas (~85 MiB of the 300 MiB budget)
    row = con.sql(f"select files from side_input_loads where kind = 'buyers' "
                  f"and source = {sql_literal(str(folder.resolve()))} and sha256 = {sql_literal(state)} "
                  f"and n_rows = {int(stored)}").fetchall()
    if not row:
        return None
    rejects = con.sql(f"select {', '.join(reject_schema())} from buyer_site_rejects order by file, line").pl()
    buyer_ids = con.sql("select coalesce(list(distinct buyer_id order by buyer_id), []) from buyer_sites").fetchall()
    return BuyerLoad(json.loads(row[0][0]), None, rejects.cast(reject_schema()), n_rows=stored,
                     buyer_ids=list(buyer_ids[0][0]))


# A staged row's place in the folder as one number, `file index << 40 | line`: the first line of
# each (buyer, site) pair is then a plain min()
_LINE_BITS = 40
_LINE_MASK = (1 << _LINE_BITS) - 1
# DuckDB's share of a load: memory_limit (and one thread) on the warehouse connection while the
# pairs are deduplicated and inserted. A process that has opened the warehouse holds ~130 MiB
# (polars, duckdb, the package; nothing here binds a Python value or registers a frame, which
# would make DuckDB import pandas, numpy and pyarrow: +85 MiB); the reader's blocks add ~50 MiB,
# DuckDB ~45: a 100 MB list (5.3M rows) peaks at 237 MiB (bench/README.md, issue 22 item 3),
# where the primary key took 1.6-1.8 GiB.
LOAD_MEMORY = 24 << 20
# The pairs are deduplicated in slices (hash of the pair modulo n), each small enough for its hash
# table to fit in LOAD_MEMORY without spilling: ~4 MiB of ids and per-row overhead per slice
SLICE_BYTES = 4 << 20
_ROW_OVERHEAD = 24  # bytes per staged row besides its ids in a hash table (seq, hash, pointers)
STAGE_ROWS = 100_000  # rows per staged Parquet file (~2 MiB of frames held before it is written)
_TMP_PREFIX = "radar-buyers-"
def _load_limit() -> int:
    """Bytes DuckDB may use for the load: LOAD_MEMORY, or RADAR_MEMORY_LIMIT when lower."""
    return min(LOAD_MEMORY, settings.memory_limit_bytes())


@contextmanager
def _duckdb_budget(con: duckdb.DuckDBPyConnection):
    """The warehouse connection with _load_limit() and one thread, restored afterwards. Its
    temp_directory is left as it is (DuckDB refuses to switch one that has been used; by default
    `<warehouse>.tmp`, DuckDB's own): slices are sized not to spill, and one that still does
    spills there."""
    limit, threads = con.sql("select current_setting('memory_limit'), current_setting('threads')").fetchall()[0]
    con.execute(f"set memory_limit = '{_load_limit() >> 20}MiB'")
    con.execute("set threads = 1")  # a hash table per thread: two would double the slice's memory
    try:
        yield
    finally:
        # DuckDB only shows a limit cut to one decimal (18.8 GiB): restored to within that last
        # digit, the middle of what the text covers. Not `reset memory_limit`: in DuckDB 1.5 it
        # changes the setting shown but leaves the buffer pool at the lower limit.
        con.execute(f"set memory_limit = '{_middle(limit)}'")
        con.execute(f"set threads = {int(threads)}")


def _middle(shown: str) -> str:
    """'2.7 GiB' -> '2.75 GiB': a size as DuckDB shows it, plus half its last digit, which DuckDB
    shows as the same text again (restoring it at every load does not drift); '512 bytes' is exact."""
    m = re.fullmatch(r"(\d+)(?:\.(\d+))?\s*(\S+)", shown.strip())
    if not m or not m.group(2):
        return shown
    decimals = len(m.group(2) or "")
    value = float(f"{m.group(1)}.{m.group(2) or 0}") + 0.5 * 10 ** -decimals
    return f"{value:.{decimals + 1}f} {m.group(3)}"


@contextmanager
def _scratch_folder():
    """A folder of this process in the temp folder for the staged blocks, removed at the end;
    those of dead processes (a load killed half way) go first. Created and removed through
    safe_paths: never through a link planted in the temp folder."""
    root = Path(tempfile.gettempdir())
    remove_left_by_dead((p for p in root.glob(f"{_TMP_PREFIX}*") if p.is_dir()), rf"^{_TMP_PREFIX}(\d+)-")
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", dir=checked(root, root)))
    try:
        yield tmp
    finally:
        remove_leftover(root, tmp)


@dataclass
class _Staged:
    blocks: Path          # Parquet files (buyer_id, site_id, seq), one per block read
    names: list[str]      # file names of the staged rows: position = the file index in seq
    rejects: pl.DataFrame
    slices: int           # how many slices the dedupe takes (SLICE_BYTES each)


def _stage_folder(folder: Path, files: list[str], tmp: Path) -> _Staged:
    """Read the folder block by block into Parquet files in `tmp`: nothing is kept in memory
    but the rejects. `files` collects the names of the files read whole."""
    import polars as pl

    staged = make_dirs(tmp, tmp / "blocks")
    index: dict[str, int] = {}
    rejects = [_rejects_frame([])]
    pending: list[pl.DataFrame] = []
    k = size = held = 0

    def flush() -> None:
        nonlocal k, held
        # a few large files rather than one per block: each pass of the dedupe opens every file
        pl.concat(pending).write_parquet(staged / f"{k:06d}.parquet", compression="lz4")
        pending.clear()
        k, held = k + 1, 0
    for rows, bad in _folder_blocks(folder, files):
        if bad.height:
            rejects.append(bad)
        if rows.height:
            # a block holds the rows of one file (_file_blocks); a file read only in part (it
            # vanished half way) keeps its index too: its rows were used before, as now
            idx = index.setdefault(rows["source_file"][0], len(index))
            pending.append(rows.select("buyer_id", "site_id", seq=pl.col("source_line") + (idx << _LINE_BITS)))
            size += int(rows["buyer_id"].str.len_bytes().sum() + rows["site_id"].str.len_bytes().sum()) \
                + _ROW_OVERHEAD * rows.height
            held += rows.height
            if held >= STAGE_ROWS:
                flush()
    if pending or not k:
        pending.append(pl.DataFrame(schema={"buyer_id": pl.Utf8, "site_id": pl.Utf8, "seq": pl.Int64}))
        flush()
    return _Staged(staged, list(index), pl.concat(rejects), max(1, -(-size // SLICE_BYTES)))


# (warehouse, folder) -> (folder state, rows loaded, result): every publish loads the inbox, and a
# folder whose files did not change since this process loaded it into that warehouse is not read
_LOADED: dict[tuple[str, str], tuple[str, int, BuyerLoad]] = {}


def load(con: duckdb.DuckDBPyConnection, folder: Path) -> BuyerLoad:
    """Read the folder and replace buyer_sites / buyer_site_rejects in one transaction, block by
    block (a 100 MB list never sits in memory whole; duplicates keep their first line), and only
    when the folder changed since it was last loaded into this warehouse (by any process:
    side_input_loads). DuckDB works within _load_limit() meanwhile (_duckdb_budget)."""
    with _duckdb_budget(con):
        return _load(con, Path(folder))


def _load(con: duckdb.DuckDBPyConnection, folder: Path) -> BuyerLoad:
    state = _folder_state(folder)
    key = (str(con.sql("select path from duckdb_databases() where database_name = current_database()")
               .fetchall()), str(folder.resolve()))
    hit = _LOADED.get(key)
    stored = con.sql("select count(*) from buyer_sites").fetchall()[0][0]
    if hit and hit[0] == state and hit[1] == stored:
        result = hit[2]
    elif (recorded := _recorded_load(con, folder, state, stored)) is not None:
        result = recorded  # loaded by an earlier process (another run, the CLI) from the same bytes
        _LOADED[key] = (state, stored, result)
    else:
        files: list[str] = []
        with _scratch_folder() as tmp:
            # the folder is read and checked before the transaction: the warehouse only sees the
            # inserts of one statement per slice, from the staged Parquet files
            staged = _stage_folder(folder, files, tmp)
            blocks = sql_literal(staged.blocks / "*.parquet")

            # The file names as literal rows and the rejects from a staged Parquet file, not Python
            # frames registered on the connection: DuckDB scans those through pyarrow and imports
            # pandas for it, ~85 MiB of the 300 MiB budget (bench/README.md, issue 22 item 3).
            names = ", ".join(f"({i}, {sql_literal(name)})" for i, name in enumerate(staged.names)) or "(0, '')"
            rejects = sql_literal(tmp / "rejects.parquet")
            staged.rejects.write_parquet(tmp / "rejects.parquet")

            def body(c):
                c.execute("delete from buyer_sites")
                # the first line of each (buyer, site), one slice of the pairs at a time: the
                # aggregate's hash table holds one slice; rows inserted from Parquet are
                # written out as the insert goes (from Python frames inside an open
                # transaction they would stay in memory: sites/store.py)
                for part in range(staged.slices):
                    c.execute(f"""insert into buyer_sites (buyer_id, site_id, source_file, source_line)
                                  select k.buyer_id, k.site_id, f.name, k.seq & {_LINE_MASK}
                                  from (select buyer_id, site_id, min(seq) as seq from read_parquet({blocks})
                                        where hash(buyer_id, site_id) % {staged.slices} = {part}
                                        group by buyer_id, site_id) as k
                                  join (values {names}) as f (idx, name) on f.idx = k.seq >> {_LINE_BITS}""")
                c.execute("delete from buyer_site_rejects")
                c.execute(f"insert into buyer_site_rejects by name select * from read_parquet({rejects})")
                # the folder's hash beside what it gave, in the same transaction (the next process skips it)
                source = sql_literal(str(folder.resolve()))
                c.execute(f"delete from side_input_loads where kind = 'buyers' and source = {source}")
                c.execute(f"insert into side_input_loads select 'buyers', {source}, {sql_literal(state)}, "
                          f"{sql_literal(json.dumps(files))}, (select count(*) from buyer_sites), now()::timestamp")
            # one transaction: a load that fails half way leaves the old rows. On a DuckLake: a
            # named snapshot, rerun if it raced another writer of these tables (body is rerunnable)
            in_transaction(con, body, "replace buyer_sites from the buyers inbox")
        n_rows, buyer_ids = con.sql("select count(*), coalesce(list(distinct buyer_id order by buyer_id), []) "
                                    "from buyer_sites").fetchall()[0]
        result = BuyerLoad(list(files), None, staged.rejects, n_rows=n_rows, buyer_ids=list(buyer_ids))
        _LOADED[key] = (state, n_rows, result)
    # one anti join for both: the first UNKNOWN_SHOWN pairs, each row carrying the count of all
    shown = con.sql("select buyer_id, site_id, count(*) over () from buyer_sites anti join sites using (site_id) "
                    f"order by buyer_id, site_id limit {UNKNOWN_SHOWN}").fetchall()
    result.n_unknown = shown[0][2] if shown else 0
    result.unknown_sites = [(buyer_id, site_id) for buyer_id, site_id, _ in shown]
    return result
