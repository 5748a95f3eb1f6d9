"""Reading a site file chunk by chunk: lines with a size cap, every line through the fast path,
the lines it cannot prove valid through the exact path, duplicate site ids across chunks."""
from __future__ import annotations

import gc
import hashlib
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from radar_pipeline.sites.intake.exact import _parse_slow, exact_path
from radar_pipeline.sites.intake.fast import fast_frames, fast_parse
from radar_pipeline.sites.intake.fields import (
    MAX_LINE_BYTES,
    IntakeResult,
    _empty_result,
    controls_schema,
    load_saq_fields,
    nc_schema,
    rejects_schema,
    saq_schema,
    saq_specs,
    sites_schema,
)

if TYPE_CHECKING:
    import pandera.polars as pa
    import polars as pl

CHUNK_LINES = 50_000  # lines validated together; bounds memory whatever the file size


_BLOCK = 1 << 20  # bytes read at once by _iter_lines


def _iter_lines(fh: BinaryIO, first: int = 0) -> Iterator[tuple[int, bytes | None, int]]:
    """Yield (line number, bytes or None when over the cap, size) for every line (ended by a
    newline, or by the end of the file), holding at most a block and MAX_LINE_BYTES + 1 bytes of
    the line being read. The same lines and sizes as reading line by line with
    `fh.readline(MAX_LINE_BYTES + 2)` (_iter_lines_readline), read by blocks: splitting a block is
    C, a readline per line was ~1.5 µs a line. A line within the cap: its bytes without the
    trailing CR/LF, size their length; over it: None, size the line's bytes with its newline.
    `first`: the number of the line before the first one read (a worker reading from an offset)."""
    cap = MAX_LINE_BYTES
    lineno = first
    carry = b""  # the start of a line whose newline is not read yet: at most cap + 1 bytes
    skipped = -1  # >= 0: bytes so far of a line over the cap, not kept, until its newline
    while block := fh.read(_BLOCK):
        if skipped >= 0:
            nl = block.find(b"\n")
            if nl < 0:
                skipped += len(block)
                continue
            lineno += 1
            yield lineno, None, skipped + nl + 1
            skipped = -1
            block = block[nl + 1:]
        if carry:
            block = carry + block
            carry = b""
        parts = block.split(b"\n")
        tail = parts.pop()  # after the block's last newline
        for part in parts:
            lineno += 1
            if len(part) <= cap + 1:  # the line with its newline within readline's cap + 2
                body = part.rstrip(b"\r\n")
                if len(body) > cap:
                    yield lineno, None, len(body)
                else:
                    yield lineno, body, len(body)
            else:
                yield lineno, None, len(part) + 1
        if len(tail) > cap + 1:  # over the cap whatever follows
            skipped = len(tail)
        else:
            carry = tail
    if skipped >= 0:
        yield lineno + 1, None, skipped
    elif carry:  # a last line without newline
        if len(carry) <= cap:
            body = carry.rstrip(b"\r\n")
            yield lineno + 1, body, len(body)
        else:
            yield lineno + 1, None, len(carry)


def _iter_lines_readline(fh: BinaryIO) -> Iterator[tuple[int, bytes | None, int]]:
    """_iter_lines, line by line (the reference its tests compare with)."""
    lineno = 0
    while True:
        chunk = fh.readline(MAX_LINE_BYTES + 2)
        if not chunk:
            return
        lineno += 1
        if chunk.endswith(b"\n") or len(chunk) <= MAX_LINE_BYTES:
            body = chunk.rstrip(b"\r\n")
            if len(body) > MAX_LINE_BYTES:
                yield lineno, None, len(body)
            else:
                yield lineno, body, len(body)
            continue
        size = len(chunk)
        while not chunk.endswith(b"\n"):  # skip the rest of the oversized line
            chunk = fh.readline(1 << 16)
            if not chunk:
                break
            size += len(chunk)
        yield lineno, None, size

def _per_line(reader: _Reader, lines: list[tuple[int, bytes | None, int]]) -> tuple:
    """The per-line work of a chunk, which needs nothing from the other chunks: the fast path
    (orjson, column-wise checks) and the site ids of the lines it leaves to the exact path (for the
    duplicates). Runs here or in a worker process (`_Workers`): its result is picklable."""
    fast, slow_lines = fast_parse(reader, lines)
    slow_ids = [(r["line"], r["site_id"]) for r in _parse_slow(slow_lines, ids_only=True).site_rows
                if r["site_id"] is not None]
    frames, bad = fast_frames(reader, fast)
    return fast["line"], fast["site_id"], [item[0] for item in slow_lines], slow_ids, frames, bad


class _Reader:
    """Validates one file chunk by chunk. Every line goes through a fast path (orjson,
    column-wise checks); a line the fast path cannot prove valid — malformed, any rule
    broken, a duplicate, escapes/odd numbers it does not reproduce byte for byte — is
    re-read by the exact path (the original row-by-row reader and pandera schemas), which
    alone writes reject rows. So rejects are the exact path's, and accepted rows are equal."""

    def __init__(self, file_name: str, countries: set[str], isic: pl.DataFrame, controls: set[str],
                 saq_fields: pl.DataFrame, content_hash: bool = True):
        self.file_name = file_name
        self.content_hash = content_hash
        self.countries = countries
        self.isic = isic
        self.controls = controls
        self.saq_fields = saq_fields
        self.iso3_cache: dict[str, str | None] = {}
        self.seen: dict[str, int] = {}  # site_id (or a digest of a long one) -> first line
        self._schemas: dict[str, pa.DataFrameSchema] | None = None
        self.specs = saq_specs(saq_fields)
        self.saq_keys = frozenset(s[0] for s in self.specs)
        self.saq_schema = saq_schema(saq_fields)

    @property
    def schemas(self) -> dict[str, pa.DataFrameSchema]:
        if self._schemas is None:
            # pandera is imported with the rules, on the first chunk that needs the exact path:
            # ~0.5 s that the definitions import and a clean file never pay (issue 24 item 3)
            from radar_pipeline.sites.intake.rules import _schemas

            self._schemas = _schemas(self.countries, self.isic["code"].to_list(), self.controls, self.saq_fields)
        return self._schemas

    # ------------------------------------------------------------------ chunk

    def chunk(self, lines: list[tuple[int, bytes | None, int]], part: tuple | None = None,
              reread=None) -> IntakeResult:
        """One chunk's result; `part`: its `_per_line` result when a worker process computed it."""
        # the cyclic GC would re-scan every container parsed so far, over and over; nothing
        # here makes cycles, so it is paused for the chunk and restored after
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._unhashed(self._finish(lines, part, reread) if part is not None else self._chunk(lines))
        finally:
            if gc_was_enabled:
                gc.enable()

    def _unhashed(self, result: IntakeResult) -> IntakeResult:
        """Without the content hash when it is not wanted (the exact path's rows have one too)."""
        import polars as pl

        if self.content_hash:
            return result
        return replace(result, sites=result.sites.with_columns(pl.lit(None, pl.Utf8).alias("content_hash")))

    def _chunk(self, lines: list[tuple[int, bytes | None, int]]) -> IntakeResult:
        return self._finish(lines, _per_line(self, lines))

    def _finish(self, lines: list[tuple[int, bytes | None, int]], part: tuple, reread=None) -> IntakeResult:
        """The chunk's result from its per-line part (`_per_line`, here or in a worker process):
        duplicate ids across chunks, the exact path for every line the fast path did not prove
        valid, the tables in line order. From a worker, `lines` holds only the lines it left to the
        exact path; `reread()` gives all the chunk's lines again (for a duplicate id it accepted)."""
        import polars as pl

        fast_line, fast_id, slow_nos, slow_ids, frames, bad = part
        by_line = {item[0]: item for item in lines} if slow_nos or bad or slow_ids else None
        slow_lines = [by_line[line] for line in slow_nos] if slow_nos else []

        # duplicate site ids, across chunks: every parsed object with a string site_id
        # counts, in line order; later occurrences name the first line
        pairs = zip(fast_line, fast_id)
        if slow_ids:
            pairs = sorted([*pairs, *slow_ids])
        dup: dict[int, int] = {}
        setdefault = self.seen.setdefault
        for line, sid in pairs:
            if len(sid) > 128:
                sid = "\x00" + hashlib.sha256(sid.encode("utf-8", "surrogatepass")).hexdigest()
            first = setdefault(sid, line)
            if first != line:
                dup[line] = first

        bad.update(dup.keys() & set(fast_line) if dup else ())
        if bad:
            by_line = by_line or {item[0]: item for item in lines}
            if reread is not None and not by_line.keys() >= bad:
                by_line = {item[0]: item for item in reread()}
            slow_lines = sorted([*slow_lines, *(by_line[line] for line in bad)], key=lambda item: item[0])
        exact = exact_path(self, slow_lines, dup)

        good = frames["sites"].filter(~pl.col("line").is_in(list(bad))) if bad else frames["sites"]
        line_to_site = good.select("line", "site_id")
        sites = good.select(
            "site_id", "site_name", "iso3", "isic_code", "isic_level",
            pl.when(pl.col("isic_level") == "class").then(pl.col("isic_code")).alias("isic_class"),
            pl.lit(self.file_name).alias("source_file"), pl.col("line").alias("source_line"), "content_hash",
        ).cast(sites_schema())
        saq = frames["saq"].join(line_to_site, on="line", how="inner", maintain_order="left")
        ctl = frames["controls"].join(line_to_site, on="line", how="inner", maintain_order="left")
        ncs = frames["audits"].join(line_to_site, on="line", how="inner", maintain_order="left")
        saq_cols = self.saq_schema
        if exact is None:
            return IntakeResult(
                sites=sites, saq=saq.select(list(saq_cols)).cast(saq_cols),
                controls=ctl.select("site_id", "control_id").cast(controls_schema()),  # one per line: fast_frames
                nonconformities=ncs.select(list(nc_schema())).cast(nc_schema()),
                rejects=pl.DataFrame(schema=rejects_schema()))
        ex, ex_lines = exact
        order = {"maintain_order": True}
        return IntakeResult(
            sites=pl.concat([sites.with_columns(_l=pl.col("source_line")),
                             ex.sites.with_columns(_l=pl.col("source_line"))]).sort("_l", **order).drop("_l"),
            saq=pl.concat([saq.select("line", *saq_cols).cast(saq_cols),
                           ex.saq.join(ex_lines, on="site_id", how="left", maintain_order="left")
                           .select("line", *saq_cols)]).sort("line", **order).drop("line"),
            controls=pl.concat([ctl.select("line", "site_id", "control_id").cast(controls_schema()),
                                ex.controls.join(ex_lines, on="site_id", how="left", maintain_order="left")
                                .select("line", "site_id", "control_id")])
            .sort("line", **order).drop("line").unique(maintain_order=True),
            nonconformities=pl.concat([ncs.select("line", *nc_schema()).cast(nc_schema()),
                                       ex.nonconformities.join(ex_lines, on="site_id", how="left",
                                                               maintain_order="left")
                                       .select("line", *nc_schema())]).sort("line", **order).drop("line"),
            rejects=ex.rejects)


def iter_sites_jsonl(path: Path, *, countries: set[str], isic: pl.DataFrame, controls: set[str],
                     saq_fields: pl.DataFrame | None = None, chunk_lines: int = CHUNK_LINES,
                     content_hash: bool = True, workers: int = 0, pool=None,
                     ranges: FileRanges | None = None) -> Iterator[IntakeResult]:
    """Read a JSON Lines site file in chunks of `chunk_lines` lines, one IntakeResult per
    chunk (valid sites of those lines, their rejects). Duplicate site ids are detected
    across chunks. Memory is bounded by the chunk, not the file. `content_hash=False`: the sites'
    content_hash is null and not computed (`radar score`, which stores nothing). `workers` > 0: the
    per-line part of each chunk (orjson, the fast path) in that many worker processes, the next
    chunks parsed while this one is finished and consumed (workers.py); the same results. `pool`: a
    started workers.IntakePool on this file to use instead (the caller closes it); its first chunks
    are submitted by this call, before the first result is asked for; `ranges`: the file's
    FileRanges(path, chunk_lines) for it, when the caller wants their lines() too."""
    path = Path(path)
    saq_fields = saq_fields if saq_fields is not None else load_saq_fields()
    # the file's name, not its path: rejects are published, and a server path is nobody's business
    reader = _Reader(path.name, countries, isic, controls, saq_fields, content_hash)
    if pool is not None:
        return (reader.chunk(lines, part, reread)
                for lines, part, reread in pool.parts(ranges if ranges is not None else
                                                      _file_ranges(path, chunk_lines), reader))
    return _iter_chunks(path, reader, chunk_lines, workers)


def _iter_chunks(path: Path, reader: _Reader, chunk_lines: int, workers: int) -> Iterator[IntakeResult]:
    with open(path, "rb") as fh:
        if workers > 0:
            from radar_pipeline.sites.intake.workers import per_line_parts

            for lines, part, reread in per_line_parts(path, _ranges(fh, chunk_lines), reader, workers):
                yield reader.chunk(lines, part, reread)
        else:
            for lines in _batches(fh, chunk_lines):
                yield reader.chunk(lines)


def _file_ranges(path: Path, chunk_lines: int) -> Iterator[tuple[int, int, int]]:
    with open(path, "rb") as fh:
        yield from _ranges(fh, chunk_lines)


class FileRanges:
    """The chunk ranges of a file (_ranges), found as they are asked for; lines() finds the rest at
    once and gives the file's number of lines (progress.count_lines' figure), so that the file is
    read once for both (`radar score`: the progress total, asked for once the first chunks are out)."""

    def __init__(self, path: Path, chunk_lines: int):
        self._scan = self._tracked(_file_ranges(Path(path), chunk_lines))
        self._ahead: deque[tuple[int, int, int]] = deque()
        self._lines = 0

    def _tracked(self, scan: Iterator[tuple[int, int, int]]) -> Iterator[tuple[int, int, int]]:
        for rng in scan:
            self._lines = rng[1] + rng[2]  # the lines up to this chunk's end
            yield rng

    def __iter__(self) -> FileRanges:
        return self

    def __next__(self) -> tuple[int, int, int]:
        return self._ahead.popleft() if self._ahead else next(self._scan)

    def lines(self) -> int:
        self._ahead.extend(self._scan)
        return self._lines


def _ranges(fh: BinaryIO, chunk_lines: int, block: int = 1 << 20) -> Iterator[tuple[int, int, int]]:
    """(byte offset, number of the line before it, lines) of each chunk of `chunk_lines` lines, as
    _iter_lines numbers them (a line ends at a newline or at the end of the file): by counting
    newlines in blocks, without making the lines."""
    start, first, n, pos = 0, 0, 0, 0  # chunk start, line before it, its lines so far, bytes read
    last = b"\n"
    while data := fh.read(block):
        last = data[-1:]
        count = data.count(b"\n")
        used = 0  # newlines of this block that ended a chunk's lines already
        newlines = None
        while n + count - used >= chunk_lines:  # a chunk ends in this block: at its (chunk_lines - n)th newline
            if newlines is None:  # the block's newline offsets, by numpy (a find per line was ~2 µs a line)
                import numpy as np

                newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
            used += chunk_lines - n
            yield start, first, chunk_lines
            start, first, n = pos + int(newlines[used - 1]) + 1, first + chunk_lines, 0
        n += count - used
        pos += len(data)
    n += last != b"\n"  # a last line without newline
    if n:
        yield start, first, n


def _batches(fh: BinaryIO, chunk_lines: int) -> Iterator[list[tuple[int, bytes | None, int]]]:
    batch: list[tuple[int, bytes | None, int]] = []
    for item in _iter_lines(fh):
        batch.append(item)
        if len(batch) >= chunk_lines:
            yield batch
            batch = []
    if batch:
        yield batch


def read_sites_jsonl(path: Path, *, countries: set[str], isic: pl.DataFrame, controls: set[str],
                     saq_fields: pl.DataFrame | None = None, chunk_lines: int = CHUNK_LINES) -> IntakeResult:
    """Read one JSON Lines site file; valid sites in tables, everything else in `rejects`.

    countries: the ISO3 universe; isic: (code, level, section, division, grp,
    is_primary_producer); controls: catalogue control ids; saq_fields: the questionnaire
    definition (default rules/saq_fields.csv). Holds the whole result in memory: for big
    files use `iter_sites_jsonl` (store.ingest does)."""
    import polars as pl

    parts = list(iter_sites_jsonl(path, countries=countries, isic=isic, controls=controls,
                                  saq_fields=saq_fields, chunk_lines=chunk_lines)) \
        or [_empty_result(saq_fields if saq_fields is not None else load_saq_fields())]
    if len(parts) == 1:
        return parts[0]
    return IntakeResult(*(pl.concat([getattr(p, name) for p in parts])
                          for name in ("sites", "saq", "controls", "nonconformities", "rejects")))
