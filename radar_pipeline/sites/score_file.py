"""Score a JSON Lines file of sites against the warehouse without writing to it (`radar score`,
tests, notebooks): read and validated in chunks into an in-memory DuckDB holding the reference
tables and the edition's inherent risk, scored once for the whole file; the warehouse is never
locked for writing. No content hash is computed: nothing is stored."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from radar_pipeline.platform import settings
from radar_pipeline.platform.warehouse import attach_read_only, ensure_schema, exists, sql_literal
from radar_pipeline.sites import scoring, store


@dataclass
class ScoreFileResult:
    n_scored: int = 0
    n_rejected: int = 0
    rejects: list[pl.DataFrame] = field(default_factory=list)  # the first `rejects_kept` reject rows
    out: Path | None = None
    explain_out: Path | None = None


OUT_FORMATS = (".csv", ".parquet")
# Lines read and validated at once by `radar score`: validating a chunk peaks at ~15 KiB per line
# (pandera frames of every answer on the exact path). The valid sites are kept (in DuckDB) and
# scored once, for the whole file (with --explain: per chunk, the next chunk read meanwhile).
SCORE_CHUNK_LINES = 20_000
# Sites scored at once (RADAR_SCORE_BATCH_SITES): a file of up to this many valid sites is scored
# once; a larger one in batches of this size, each batch's scores written to a part file and the
# parts merged by site_id at the end. Scoring 1M sites at once peaks at ~1.4 GiB; 3M at once took
# 3.9 GiB (bench/README.md, issue 24 item 6), so the batch bounds the memory of any file.
SCORE_BATCH_SITES = 1_000_000
# Valid sites whose chunks are held (as frames) and put into DuckDB at once (_load_parts): ~80 MiB
LOAD_BATCH_SITES = 100_000
REJECTS_SHOWN = 20


def _scoring_connection(edition: int, warehouse: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the warehouse's reference tables and the edition's inherent
    risk: scoring a file never writes to (nor locks for writing) the warehouse."""
    if not exists(warehouse):
        raise SystemExit(f"no warehouse at {warehouse}: run `radar refresh --edition {edition}` first")
    con = duckdb.connect()
    ensure_schema(con)
    attach_read_only(con, warehouse, "wh")  # a file or a DuckLake (duckdb 1.5 takes no $p in ATTACH)
    # the reference tables intake validates against (base tables only: `countries` may be a
    # view over `edition_countries`)
    tables = {(r[0], r[1]) for r in con.sql("select database_name, table_name from duckdb_tables()").fetchall()}
    for table in ("edition_countries", "countries", "isic"):
        if ("memory", table) in tables and ("wh", table) in tables:
            con.execute(f"insert into {table} by name select * from wh.{table}")
    # the edition inlined (a whole number), not bound: binding a parameter makes duckdb import pandas
    # (~1 s of a cold process, more with the workers starting beside it)
    con.execute("insert into inherent_risk_overall by name select * from wh.inherent_risk_overall "
                f"where edition = {int(edition)}")
    con.execute("detach wh")
    if not con.sql("select count(*) from inherent_risk_overall").fetchall()[0][0]:
        con.close()
        raise SystemExit(f"edition {edition} has no inherent risk in {warehouse}: run "
                         f"`radar refresh --edition {edition}` first")
    scoring.load_rules(con, temp=True)
    # the intake already rejects a repeated site_id: no primary-key index to maintain per insert
    con.execute("create or replace table sites as select * from sites limit 0")
    return con


def _load_chunk(con: duckdb.DuckDBPyConnection, part, *, append: bool = False) -> None:
    """Put one chunk's valid sites into the in-memory site tables: in place of the previous chunk's,
    or (`append`) beside them (--explain: each chunk is scored on its own)."""
    _load_parts(con, [part], append=append)


def _load_parts(con: duckdb.DuckDBPyConnection, parts: list, *, append: bool = True) -> None:
    """Put some chunks' valid sites into the in-memory site tables, one INSERT per table for all of
    them (in their order): an INSERT from a registered frame costs ~15-25 ms whatever its size (the
    SAQ table's 31 columns the most): 200k sites took 1.5 s chunk by chunk (10 chunks x 4 tables),
    0.4 s at once; loaded chunk by chunk beside the workers, `radar score` of 200k sites took 4.5 s
    more CPU in all (DuckDB's threads and the workers contending)."""
    if not append:
        _clear_sites(con)
    now = datetime.now(UTC).replace(tzinfo=None)
    # one DuckDB thread: the rows are appended to the tables' last row groups in order, and the
    # intake's worker processes keep the cores. Measured at 1M sites (load 4-5): the main process
    # peaked at 1331-1352 MiB with it, 1358-1450 without (the scoring's peak); the process tree at
    # ~1570 MiB with it (during the intake: this process ~1.25 GiB, the workers ~0.3), ~1400-1440
    # without
    threads = con.sql("select current_setting('threads')").fetchone()[0]
    con.execute("set threads = 1")
    try:
        for name, table in (("sites", "sites"), ("saq", "site_saq"), ("controls", "site_controls"),
                            ("nonconformities", "site_nonconformities")):
            frames = [f for f in (getattr(part, name) for part in parts) if f.height]
            if not frames:
                continue
            frame = frames[0] if len(frames) == 1 else pl.concat(frames, rechunk=False)
            del frames
            con.register("_radar_chunk", frame)
            try:
                extra = f", '{now.isoformat()}'::timestamp as updated_at" if table == "sites" else ""
                con.execute(f"insert into {table} by name select *{extra} from _radar_chunk")
            finally:
                con.unregister("_radar_chunk")
    finally:
        con.execute(f"set threads = {int(threads)}")


def _clear_sites(con: duckdb.DuckDBPyConnection) -> None:
    """Empty the in-memory site tables. Recreated rather than deleted from: a DELETE keeps the rows'
    memory until a checkpoint, a replaced table gives it back (no key or check to keep: the intake
    has validated every row)."""
    for table in ("site_saq", "site_controls", "site_nonconformities", "sites"):
        con.execute(f"create or replace table {table} as select * from {table} limit 0")


def _native_intake() -> bool:
    """Whether `radar score` tries the native intake first (intake/native.py): RADAR_NATIVE_INTAKE=0
    turns it off (every file then takes the chunked line-exact path, as before issue 24's third pass)."""
    raw = os.environ.get("RADAR_NATIVE_INTAKE", "").strip()
    if raw not in ("", "0", "1"):
        raise SystemExit(f"RADAR_NATIVE_INTAKE {raw!r} must be 0 or 1")
    return raw != "0"


def _batch_sites() -> int:
    raw = os.environ.get("RADAR_SCORE_BATCH_SITES", "").strip()
    if not raw:
        return SCORE_BATCH_SITES
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"RADAR_SCORE_BATCH_SITES {raw!r} is not a positive whole number of sites")
    return int(raw)


class _Sink:
    """Append frames to a .csv or .parquet file chunk by chunk (header / schema from the first)."""

    def __init__(self, path: Path):
        self.path, self._fh, self._writer = path, None, None

    def write(self, frame: pl.DataFrame) -> None:
        if self.path.suffix == ".csv":
            first = self._fh is None
            if first:
                self._fh = open(self.path, "wb")
            frame.write_csv(self._fh, include_header=first)
        else:
            import pyarrow.parquet as pq

            table = frame.to_arrow()
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.path, table.schema)
            self._writer.write_table(table.cast(self._writer.schema))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        if self._writer is not None:
            self._writer.close()


def score_file_to(sites_file: Path, edition: int, warehouse: Path, out: Path, *,
                  explain_out: Path | None = None, chunk_lines: int | None = None,
                  progress: bool = True, rejects_kept: int | None = REJECTS_SHOWN) -> ScoreFileResult:
    """Score a JSON Lines file against the warehouse's inherent risk. The file is read and
    validated in chunks of `chunk_lines` lines (the parser's memory is bounded by the chunk); the
    valid sites of every chunk are collected in the in-memory DuckDB and scored ONCE, for the whole
    file (~0.6 KiB per site there: 1M sites under 1.5 GiB in all); a file of more than
    RADAR_SCORE_BATCH_SITES (1M) valid sites in batches of that many, merged by site_id at the end.
    Writes the scores (one row per
    valid site, ordered by site_id, the columns of the engine's site_scores) to `out`. With
    `explain_out` the explanation rows (site_score_factors, ~80 per site) are written as well: then
    each chunk is scored on its own (so that those rows stream to the file chunk by chunk) and
    the chunks' scores are merged by site_id."""
    from radar_pipeline.platform.progress import MIN_TOTAL, Progress, count_lines
    from radar_pipeline.sites.intake import iter_sites_jsonl, native
    from radar_pipeline.sites.intake.fields import load_saq_fields
    from radar_pipeline.sites.intake.reader import FileRanges
    from radar_pipeline.sites.intake.workers import IntakePool, intake_workers

    for path, what in ((out, "--out"), (explain_out, "--explain")):
        if path is not None and path.suffix not in OUT_FORMATS:
            raise SystemExit(f"{what} must end in .csv or .parquet, got {path.name}")
    if not sites_file.is_file():
        raise SystemExit(f"no such sites file: {sites_file}")
    chunk_lines = chunk_lines or SCORE_CHUNK_LINES
    # the per-line work (the native intake's msgspec check; the chunked path's orjson parse: one core,
    # the GIL) in worker processes for a big file (intake/workers.py), started now: they import while
    # the warehouse is read here
    n_workers = intake_workers(sites_file.stat().st_size)
    # the native intake (intake/native.py) first, for a file scored at once: all its sites or none
    native_first = explain_out is None and _native_intake()
    at_once = native_first and native.fits(sites_file, _batch_sites())
    pool = (IntakePool(sites_file, n_workers, native=native_first) if n_workers > 0 and exists(warehouse)
            else None)
    try:
        con = _scoring_connection(edition, warehouse)
    except BaseException:
        if pool is not None:
            pool.close()
        raise
    result = ScoreFileResult(out=out, explain_out=explain_out)
    factors_sql = (f"select * from ({scoring._sql('site_score_factors')}) order by site_id, kind, item"
                   if explain_out is not None else None)
    # one version for the whole file, as store.score_and_store does for a Dagster run
    version = scoring.site_version()
    factor_params = {k: v for k, v in {"edition": edition, "methodology_version": version}.items()
                     if factors_sql and f"${k}" in factors_sql}
    try:
        countries, isic, controls = store.reference(con, check_stored=False)  # its site tables are empty
        saq_fields = load_saq_fields()
        with tempfile.TemporaryDirectory(prefix="radar-score-") as tmp, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="radar-score-read") as reader, \
                Progress("score", min_total=MIN_TOTAL if progress else 1 << 62) as bar:
            # the file's sites and the scoring's hash tables stay under RADAR_MEMORY_LIMIT (1GB by
            # default), spilling to this temp folder beyond it: 1M sites would take ~2 GiB
            con.execute(f"set temp_directory = {sql_literal(Path(tmp) / 'duckdb')}")
            con.execute(f"set memory_limit = '{settings.memory_limit()}'")  # checked there: a size DuckDB takes
            counts = (0, 0, 0)  # (lines, blank, failed) of the at-once check, when it ran
            if native_first and at_once:
                questions = native.questions_of(saq_fields)

                def check() -> tuple[int, int, int]:
                    nonlocal counts
                    counts = native.check(pool, sites_file, questions)
                    return counts
                n_native = native.load(con, sites_file, countries=countries, isic=isic, controls=controls,
                                       saq_fields=saq_fields, check=check, max_sites=_batch_sites())
                if n_native is not None:
                    if pool is not None:  # the workers' memory back before the scoring
                        pool.close(wait=False)
                    bar.update(n_native, rejected=0)
                    result.n_scored = _score_whole(con, edition, version, out, Path(tmp))
                    return result
            # more sites than a batch: natively, batch by batch. Also when the estimate (native.fits)
            # was short and the at-once check found clean lines but too many of them: a file of 1.05M
            # lines for a batch of 1M took the chunked path: 26.0 s, against 18.3 s so (bench/README.md)
            if native_first and (not at_once or (counts[0] > _batch_sites() and not any(counts[1:]))):
                n_native = _score_native_batches(con, sites_file, edition, version, out, Path(tmp), pool=pool,
                                                 reference=(countries, isic, controls), saq_fields=saq_fields,
                                                 bar=bar)
                if n_native is not None:
                    result.n_scored = n_native
                    return result
            # the file has a line the native intake does not accept: the chunked path names it
            # the chunked path: every line through the line-exact reader (intake/reader.py). With
            # workers, its first chunks are submitted by iter_sites_jsonl: they are parsed while the
            # rest of the file's chunk ranges are found (once: they give the progress total too), and
            # each chunk is finished and loaded while the next are parsed
            ranges = FileRanges(sites_file, chunk_lines) if pool is not None else None
            chunks = iter_sites_jsonl(sites_file, countries=countries, isic=isic, controls=controls,
                                      chunk_lines=chunk_lines, content_hash=False, pool=pool, ranges=ranges,
                                      saq_fields=saq_fields)
            n_lines = ranges.lines() if ranges is not None else None
            if progress:  # before the bar's first update, which shows it
                bar.total = n_lines if n_lines is not None else count_lines(sites_file)
            # with workers, the chunks left once the next-to-last is in: from there each chunk is loaded
            # as it comes (the next-to-last while the last is parsed), so the load left after the last
            # chunk is one chunk's, not up to LOAD_BATCH_SITES sites'
            last_chunks = -(-n_lines // chunk_lines) - 1 if n_lines is not None else None
            explain = _Sink(explain_out) if explain_out is not None else None
            parts: list[Path] = []
            try:
                # Scoring each chunk on its own (--explain), the next chunk is read and validated
                # (polars, orjson) while DuckDB scores this one. Scoring the whole file once, the
                # chunks are read one after the other: DuckDB's insert of a chunk scans its frames
                # through Python and would wait on the parser thread (the GIL) for every batch.
                ahead = explain is not None
                pending = reader.submit(next, chunks, None) if ahead else None
                k = 0
                batch, held = _batch_sites(), 0  # valid sites loaded and not yet scored (whole-file path)

                unloaded: list = []  # chunks read and not yet in DuckDB (whole-file path)
                n_unloaded = 0

                def load_held() -> None:
                    nonlocal n_unloaded
                    if unloaded:
                        _load_parts(con, unloaded)
                        unloaded.clear()
                        n_unloaded = 0

                def score_held() -> None:
                    # a batch's scores to a part file ordered by site_id (written by DuckDB), then its
                    # sites out of DuckDB
                    load_held()
                    parts.append(Path(tmp) / f"scores_{len(parts):06d}.parquet")
                    result.n_scored += _score_to(con, edition, version, parts[-1])
                    _clear_sites(con)

                while (part := pending.result() if ahead else next(chunks, None)) is not None:
                    if ahead:
                        pending = reader.submit(next, chunks, None)
                    if explain is None and held >= batch:  # more sites than a batch: score those held
                        score_held()
                        held = 0
                    result.n_rejected += part.rejects.height
                    room = (part.rejects.height if rejects_kept is None
                            else rejects_kept - sum(r.height for r in result.rejects))
                    if room > 0 and part.rejects.height:
                        result.rejects.append(part.rejects.head(room))
                    if explain is None:
                        held += part.sites.height
                        unloaded.append(part)
                        n_unloaded += part.sites.height
                        if n_unloaded >= LOAD_BATCH_SITES or (last_chunks is not None and k + 1 >= last_chunks):
                            load_held()
                    else:
                        _load_chunk(con, part)
                        scores = scoring.score_sites(con, edition, None, version)
                        result.n_scored += scores.height
                        parts.append(Path(tmp) / f"scores_{k:06d}.parquet")
                        scores.write_parquet(parts[-1], compression="lz4")
                        explain.write(con.sql(factors_sql, params=factor_params).pl())
                    bar.update(part.sites.height + part.rejects["line"].n_unique(),
                               rejected=result.n_rejected)
                    k += 1
                    del part
                if pool is not None:  # the workers' memory back before the scoring (they exit meanwhile)
                    pool.close(wait=False)
                load_held()
                if explain is None and parts:  # scored in batches: the rest, then the parts merged below
                    if held:
                        score_held()
                    con.close()
                elif explain is None:  # the whole file at once (an empty file: the columns, no rows)
                    result.n_scored = _score_whole(con, edition, version, out, Path(tmp))
                elif not parts:  # an empty file: the columns without rows (the site tables are empty)
                    parts.append(Path(tmp) / "scores_empty.parquet")
                    scoring.score_sites(con, edition, None, version).write_parquet(parts[-1])
                    explain.write(con.sql(factors_sql, params=factor_params).pl())
            finally:
                if explain is not None:
                    explain.close()
            if parts:  # --explain, or a file scored in batches
                _write_sorted(parts, out)
    finally:
        con.close()
        if pool is not None:
            pool.close()
    return result


def _score_native_batches(con: duckdb.DuckDBPyConnection, sites_file: Path, edition: int, version: str,
                          out: Path, tmp: Path, *, pool, reference: tuple, saq_fields: pl.DataFrame,
                          bar) -> int | None:
    """A file of more than RADAR_SCORE_BATCH_SITES sites through the native intake, a batch at a
    time: each part of the file (native.split_parts, copied to `tmp`) checked (by the workers, on
    the file's own bytes), loaded, scored to a Parquet part and cleared; the parts merged by
    site_id into `out`. The number of sites scored; or None, with nothing left loaded, when any
    part is one the native intake does not accept or a site_id comes back in a later part (each
    part checks its own): the caller then reads the whole file with the line-exact reader, which
    names the lines. Before this, such a file took the chunked path whatever its content: 3M
    sites ~10x the time of 1M (bench/README.md, eleventh session)."""
    from radar_pipeline.sites.intake import native

    countries, isic, controls = reference
    questions = native.questions_of(saq_fields)
    batch = _batch_sites()
    controls_ddl = con.sql("select sql from duckdb_tables() where table_name = 'site_controls'").fetchone()[0]
    # a site_id once per file across parts: each part's ids, hashed (a collision only costs the
    # line-exact reader's time)
    con.execute("create or replace temp table score_batch_ids (id ubigint)")
    parts: list[Path] = []
    n_scored = 0
    whole = False
    split = native.split_parts(sites_file, batch, tmp)
    try:
        while True:
            try:
                part = next(split, None)
            except OSError as exc:  # no room in the temp folder for a part's copy, say: the chunked path
                print(f"radar score: {sites_file.name} is read line by line: its part could not be "
                      f"copied ({exc})", file=sys.stderr)
                return None
            if part is None:
                break
            n = native.load(con, part.path, countries=countries, isic=isic, controls=controls, saq_fields=saq_fields,
                            check=lambda span=(part.start, part.end): native.check(pool, sites_file, questions, span),
                            max_sites=batch, file_name=sites_file.name,
                            first_line=part.first_line)
            part.path.unlink()
            if n is None or con.sql("select count(*) from sites where hash(site_id) in "
                                    "(select id from score_batch_ids)").fetchone()[0]:
                return None
            con.execute("insert into score_batch_ids select hash(site_id) from sites")
            parts.append(tmp / f"scores_{len(parts):06d}.parquet")
            n_scored += _score_to(con, edition, version, parts[-1])
            _reset_native(con, controls_ddl)
            bar.update(n, rejected=0)
        whole = bool(parts)  # a file too big for one batch has a part at least
    finally:
        split.close()  # the file it reads, if it stopped before the end
        for path in tmp.glob("part_*.jsonl"):
            path.unlink()
        con.execute("drop table if exists score_batch_ids")
        if not whole:  # the caller reads the file again: the site tables as they were
            _reset_native(con, controls_ddl)
            for path in parts:
                path.unlink(missing_ok=True)
    if not whole:
        return None
    if pool is not None:  # the workers' memory back before the merge
        pool.close(wait=False)
    con.close()
    _write_sorted(parts, out)
    return n_scored


def _reset_native(con: duckdb.DuckDBPyConnection, controls_ddl: str) -> None:
    """The site tables as _scoring_connection left them, after the native intake (load_sites.sql
    makes site_controls a view over the file's rows)."""
    con.execute("drop view if exists temp.site_controls")
    con.execute("drop table if exists intake_read")
    if not con.sql("select count(*) from duckdb_tables() where table_name = 'site_controls'").fetchone()[0]:
        con.execute(controls_ddl)
    _clear_sites(con)


def _score_whole(con: duckdb.DuckDBPyConnection, edition: int, version: str, out: Path, tmp: Path) -> int:
    """The held sites scored at once and written to `out` (.parquet by DuckDB; .csv by polars from a
    Parquet file in `tmp`, as the batched path writes it); the connection closed; their number."""
    out.parent.mkdir(parents=True, exist_ok=True)
    scored = out if out.suffix == ".parquet" else tmp / "scores.parquet"
    n = _score_to(con, edition, version, scored)
    con.close()
    if scored != out:
        pl.scan_parquet(scored).sink_csv(out)
    return n


def _score_to(con: duckdb.DuckDBPyConnection, edition: int, version: str, path: Path) -> int:
    """The held sites' scores, ordered by site_id, written to the Parquet file `path` by DuckDB
    (scoring.score_sites_to: never held in Python, the sort spilling under the connection's memory
    limit; 1M sites' scores as a polars frame sorted in polars took ~0.5 GiB more); their number."""
    scoring.score_sites_to(con, edition, path, None, version)
    return pl.scan_parquet(path).select(pl.len()).collect().item()


# Rows of all the parts held at once by the merge (_write_sorted): ~64 MiB of scores.
MERGE_ROWS = 256_000


def _write_sorted(parts: list[Path], out: Path) -> None:
    """The parts' scores, each ordered by site_id (scoring.score_sites and score_sites_to order
    them; a site_id is in one part only: the intake rejects a repeated one), as one file ordered by
    site_id, as a whole-file scoring writes it. A k-way merge of the parts read a batch at a time
    (MERGE_ROWS in all): rows up to the smallest last site_id of the parts still being read are
    written, sorted, and the rest held for the next round; Arrow tables throughout, so the
    columns keep the types DuckDB wrote. It replaced an ORDER BY over every part in DuckDB (3M
    sites: 6-7 s at 0.9 GiB under a 500MB limit; this: bench/README.md, eleventh session). A CSV
    is written by polars from the merged Parquet, as the whole-file path writes it (number formatting)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out.parent.mkdir(parents=True, exist_ok=True)
    merged = out if out.suffix == ".parquet" else parts[0].parent / "merged.parquet"
    with contextlib.ExitStack() as opened:
        files = [pq.ParquetFile(p) for p in parts]
        for f in files:
            opened.callback(f.close)
        schema = files[0].schema_arrow
        batches = [f.iter_batches(batch_size=max(64, MERGE_ROWS // len(files))) for f in files]
        held: list[pa.Table | None] = [None] * len(files)  # each part's rows read and not yet written

        def refill(i: int) -> None:  # the part's next batch; None once it is read to the end
            while (batch := next(batches[i], None)) is not None and not batch.num_rows:
                pass
            held[i] = None if batch is None else pa.Table.from_batches([batch], schema)

        for i in range(len(files)):
            refill(i)
        writer = opened.enter_context(pq.ParquetWriter(merged, schema, compression="zstd"))
        while any(t is not None for t in held):
            # every row up to the smallest last site_id among the parts' held rows can be written:
            # the later rows of each part are greater
            frontier = min(t["site_id"][-1].as_py() for t in held if t is not None)
            ready, drained = [], []
            for i, table in enumerate(held):
                if table is None:
                    continue
                up_to = pc.less_equal(table["site_id"], frontier)
                ready.append(table.filter(up_to))
                held[i] = table.filter(pc.invert(up_to))
                if not held[i].num_rows:
                    drained.append(i)
            rows = pa.concat_tables(ready)
            writer.write_table(rows.take(pc.sort_indices(rows, [("site_id", "ascending")])))
            for i in drained:
                refill(i)
    if merged != out:
        pl.scan_parquet(merged).sink_csv(out)


def score_file(sites_file: Path, edition: int, warehouse: Path, *,
               chunk_lines: int | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Scores (and rejects) of a JSON Lines file as frames, through the same streamed path as
    `radar score` (small files: tests, notebooks)."""
    with tempfile.TemporaryDirectory(prefix="radar-score-") as tmp:
        out = Path(tmp) / "scores.parquet"
        result = score_file_to(sites_file, edition, warehouse, out, chunk_lines=chunk_lines, progress=False,
                               rejects_kept=None)
        scores = pl.read_parquet(out)
    return scores, pl.concat(result.rejects) if result.rejects else pl.DataFrame()
