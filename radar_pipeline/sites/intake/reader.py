"""Reading a site file chunk by chunk: lines with a size cap, every line through the fast path,
the lines it cannot prove valid through the exact path, duplicate site ids across chunks."""
from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import polars as pl

from radar_pipeline.sites.intake.exact import _parse_slow, exact_path
from radar_pipeline.sites.intake.fast import fast_frames, fast_parse
from radar_pipeline.sites.intake.fields import (
    CONTROLS_SCHEMA,
    MAX_LINE_BYTES,
    NC_SCHEMA,
    REJECTS_SCHEMA,
    SITES_SCHEMA,
    IntakeResult,
    _empty_result,
    load_saq_fields,
    saq_schema,
)

if TYPE_CHECKING:
    import pandera.polars as pa

CHUNK_LINES = 50_000  # lines validated together; bounds memory whatever the file size


def _iter_lines(fh: BinaryIO) -> Iterator[tuple[int, bytes | None, int]]:
    """Yield (line number, bytes or None when over the cap, size) without ever holding
    more than MAX_LINE_BYTES + 1 bytes of one line in memory."""
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
        self.specs = [(r["field"], r["type"], r["min"], r["max"],
                       None if r["allowed_values"] is None else r["allowed_values"].split("|"))
                      for r in saq_fields.iter_rows(named=True)]
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

    def chunk(self, lines: list[tuple[int, bytes | None, int]]) -> IntakeResult:
        # the cyclic GC would re-scan every container parsed so far, over and over; nothing
        # here makes cycles, so it is paused for the chunk and restored after
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._unhashed(self._chunk(lines))
        finally:
            if gc_was_enabled:
                gc.enable()

    def _unhashed(self, result: IntakeResult) -> IntakeResult:
        """Without the content hash when it is not wanted (the exact path's rows have one too)."""
        if self.content_hash:
            return result
        return replace(result, sites=result.sites.with_columns(pl.lit(None, pl.Utf8).alias("content_hash")))

    def _chunk(self, lines: list[tuple[int, bytes | None, int]]) -> IntakeResult:
        fast, slow_lines = fast_parse(self, lines)
        slow_ids = _parse_slow(slow_lines, ids_only=True).site_rows

        # duplicate site ids, across chunks: every parsed object with a string site_id
        # counts, in line order; later occurrences name the first line
        pairs = zip(fast["line"], fast["site_id"])
        if slow_ids:
            pairs = sorted([*pairs, *((r["line"], r["site_id"]) for r in slow_ids
                                      if r["site_id"] is not None)])
        dup: dict[int, int] = {}
        setdefault = self.seen.setdefault
        for line, sid in pairs:
            if len(sid) > 128:
                sid = "\x00" + hashlib.sha256(sid.encode("utf-8", "surrogatepass")).hexdigest()
            first = setdefault(sid, line)
            if first != line:
                dup[line] = first

        frames, bad = fast_frames(self, fast)
        bad.update(dup.keys() & set(fast["line"]) if dup else ())
        if bad:
            by_line = {item[0]: item for item in lines}
            slow_lines = sorted([*slow_lines, *(by_line[line] for line in bad)], key=lambda item: item[0])
        exact = exact_path(self, slow_lines, dup)

        good = frames["sites"].filter(~pl.col("line").is_in(list(bad))) if bad else frames["sites"]
        line_to_site = good.select("line", "site_id")
        sites = good.select(
            "site_id", "site_name", "iso3", "isic_code", "isic_level",
            pl.when(pl.col("isic_level") == "class").then(pl.col("isic_code")).alias("isic_class"),
            pl.lit(self.file_name).alias("source_file"), pl.col("line").alias("source_line"), "content_hash",
        ).cast(SITES_SCHEMA)
        saq = frames["saq"].join(line_to_site, on="line", how="inner", maintain_order="left")
        ctl = frames["controls"].join(line_to_site, on="line", how="inner", maintain_order="left")
        ncs = frames["audits"].join(line_to_site, on="line", how="inner", maintain_order="left")
        saq_cols = self.saq_schema
        if exact is None:
            return IntakeResult(
                sites=sites, saq=saq.select(list(saq_cols)).cast(saq_cols),
                controls=ctl.select("site_id", "control_id").unique(maintain_order=True).cast(CONTROLS_SCHEMA),
                nonconformities=ncs.select(list(NC_SCHEMA)).cast(NC_SCHEMA),
                rejects=pl.DataFrame(schema=REJECTS_SCHEMA))
        ex, ex_lines = exact
        order = {"maintain_order": True}
        return IntakeResult(
            sites=pl.concat([sites.with_columns(_l=pl.col("source_line")),
                             ex.sites.with_columns(_l=pl.col("source_line"))]).sort("_l", **order).drop("_l"),
            saq=pl.concat([saq.select("line", *saq_cols).cast(saq_cols),
                           ex.saq.join(ex_lines, on="site_id", how="left", maintain_order="left")
                           .select("line", *saq_cols)]).sort("line", **order).drop("line"),
            controls=pl.concat([ctl.select("line", "site_id", "control_id").cast(CONTROLS_SCHEMA),
                                ex.controls.join(ex_lines, on="site_id", how="left", maintain_order="left")
                                .select("line", "site_id", "control_id")])
            .sort("line", **order).drop("line").unique(maintain_order=True),
            nonconformities=pl.concat([ncs.select("line", *NC_SCHEMA).cast(NC_SCHEMA),
                                       ex.nonconformities.join(ex_lines, on="site_id", how="left",
                                                               maintain_order="left")
                                       .select("line", *NC_SCHEMA)]).sort("line", **order).drop("line"),
            rejects=ex.rejects)


def iter_sites_jsonl(path: Path, *, countries: set[str], isic: pl.DataFrame, controls: set[str],
                     saq_fields: pl.DataFrame | None = None, chunk_lines: int = CHUNK_LINES,
                     content_hash: bool = True) -> Iterator[IntakeResult]:
    """Read a JSON Lines site file in chunks of `chunk_lines` lines, one IntakeResult per
    chunk (valid sites of those lines, their rejects). Duplicate site ids are detected
    across chunks. Memory is bounded by the chunk, not the file. `content_hash=False`: the sites'
    content_hash is null and not computed (`radar score`, which stores nothing)."""
    path = Path(path)
    saq_fields = saq_fields if saq_fields is not None else load_saq_fields()
    # the file's name, not its path: rejects are published, and a server path is nobody's business
    reader = _Reader(path.name, countries, isic, controls, saq_fields, content_hash)
    with open(path, "rb") as fh:
        batch: list[tuple[int, bytes | None, int]] = []
        for item in _iter_lines(fh):
            batch.append(item)
            if len(batch) >= chunk_lines:
                yield reader.chunk(batch)
                batch = []
        if batch:
            yield reader.chunk(batch)


def read_sites_jsonl(path: Path, *, countries: set[str], isic: pl.DataFrame, controls: set[str],
                     saq_fields: pl.DataFrame | None = None, chunk_lines: int = CHUNK_LINES) -> IntakeResult:
    """Read one JSON Lines site file; valid sites in tables, everything else in `rejects`.

    countries: the ISO3 universe; isic: (code, level, section, division, grp,
    is_primary_producer); controls: catalogue control ids; saq_fields: the questionnaire
    definition (default rules/saq_fields.csv). Holds the whole result in memory: for big
    files use `iter_sites_jsonl` (store.ingest does)."""
    parts = list(iter_sites_jsonl(path, countries=countries, isic=isic, controls=controls,
                                  saq_fields=saq_fields, chunk_lines=chunk_lines)) \
        or [_empty_result(saq_fields if saq_fields is not None else load_saq_fields())]
    if len(parts) == 1:
        return parts[0]
    return IntakeResult(*(pl.concat([getattr(p, name) for p in parts])
                          for name in ("sites", "saq", "controls", "nonconformities", "rejects")))
