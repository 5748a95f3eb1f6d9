"""Worker processes for the per-line part of the intake (orjson, the fast path's checks and
column-wise frames: `reader._per_line`), which is bound to one core by the GIL. The parent finds the
chunks' byte ranges (counting newlines: reader._ranges), each worker reads its chunk's lines from the
file itself (the lines never cross a pipe) and sends back the fast path's frames and the few lines
it left to the exact path; the parent does the rest in line order (duplicate ids across chunks, the
exact path, the tables): so the result is the same as without workers, chunk for chunk
(radar_pipeline_tests/test_intake_workers.py). The controls' ids come back as an Enum of the catalogue
(_compact): they were half of the bytes pickled back.

IntakePool starts the processes at once, each importing what it needs (`_warm`) while the parent does
its own setup (`radar score`: the warehouse); the reader's arguments (the reference lists, small) go
with every chunk, the worker making its _Reader from the first. The country converter's tables (for
the workers' seed of resolved country codes) load meanwhile in a thread of the parent.

Spawned, not forked: the parent runs polars' and DuckDB's thread pools, which a fork would copy in
whatever state their locks are in. A worker imports the intake modules only. As with any spawned
process, a script that starts them must guard its top level with `if __name__ == "__main__":`
(`radar` and `python -m radar_pipeline.cli` do)."""
from __future__ import annotations

import gc
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

_READER = None  # the worker's own _Reader (no duplicate tracking: that is the parent's)
_SPEC = None  # the token of the reader arguments _READER was made from
_FILE = None  # the worker's handle on the file


def _init(path: str) -> None:
    global _FILE
    # one polars thread per worker: the workers are the parallelism (idle pool threads spinning in
    # every process cost CPU the others need); set before polars is imported here (the frames come
    # as Arrow IPC bytes for that reason)
    os.environ["POLARS_MAX_THREADS"] = "1"
    _FILE = open(path, "rb")  # the worker's, for its lifetime
    gc.disable()  # as _Reader.chunk does: the parsed objects make no cycles; a worker holds nothing else


def _warm(native: bool = False) -> None:
    """Imports what the per-line part needs (~0.4 s), while the parent still opens the warehouse;
    `native`: only what the native intake's check needs (msgspec, ~0.25 s: the chunked path's
    polars and orjson are imported by its first chunk, if the native intake leaves the file to it)."""
    if native:
        import msgspec  # noqa: F401

        from radar_pipeline.sites.intake import native as native_module  # noqa: F401
        return
    import numpy  # noqa: F401
    import orjson  # noqa: F401
    import polars  # noqa: F401

    from radar_pipeline.sites.intake import reader  # noqa: F401


def _reader(spec: tuple):
    """The worker's _Reader for the parent's reader arguments `spec` (token, args, iso3 seed): made
    on the first chunk that brings them, kept for the next ones."""
    global _READER, _SPEC
    token, args, iso3_seed = spec
    if _SPEC != token:
        import io

        import polars as pl

        from radar_pipeline.sites.intake.reader import _Reader

        file_name, countries, isic, controls, saq_fields, content_hash = args
        _READER = _Reader(file_name, countries, pl.read_ipc(io.BytesIO(isic)), controls,
                          pl.read_ipc(io.BytesIO(saq_fields)), content_hash)
        _READER.iso3_cache.update(iso3_seed)
        _SPEC = token
    return _READER


def _lines(fh, offset: int, first: int, n: int) -> list:
    """The `n` lines from byte `offset` (the one before them numbered `first`), as _iter_lines reads them."""
    from radar_pipeline.sites.intake.reader import _iter_lines

    fh.seek(offset)
    return list(islice(_iter_lines(fh, first), n))


def _run(spec: tuple, offset: int, first: int, n: int) -> tuple:
    """A chunk's per-line part, read from the file here (the lines never cross a pipe), and the
    lines the parent needs for the exact path (those the fast path left to it or found breaking a rule).
    `spec`: the parent reader's arguments (small: the reference lists), sent with every chunk so that
    the workers can start before the parent has read them from the warehouse."""
    from radar_pipeline.sites.intake.reader import _per_line

    reader = _reader(spec)
    lines = _lines(_FILE, offset, first, n)
    try:
        part = _per_line(reader, lines)
        _compact(reader, part[4])
        wanted = set(part[2]) | part[5]  # slow line numbers, bad lines
        return part, [item for item in lines if item[0] in wanted] if wanted else []
    finally:
        del lines
        gc.collect(0)


def _check(questions: tuple, start: int, end: int) -> tuple[int, int, int]:
    """A piece of the file checked by msgspec for the native intake (native.check_piece)."""
    from radar_pipeline.sites.intake.native import check_piece

    try:
        return check_piece(_FILE, start, end, questions)
    finally:
        gc.collect(0)


def _compact(reader, frames: dict) -> None:
    """The controls' ids as an Enum of the catalogue's ids (2 bytes a row) instead of strings: the
    rows of a chunk (~8 a site) were half of the bytes pickled back, ~60 ms a chunk to pickle and
    unpickle; _Reader._finish casts them back to strings (controls_schema). An id outside the
    catalogue becomes null here: fast_frames has put its line in `bad`, whose rows are dropped."""
    import polars as pl

    ctl = frames["controls"]
    if ctl.height and reader.controls:
        order = reader.__dict__.get("_control_enum")
        if order is None:
            order = reader._control_enum = pl.Enum(sorted(reader.controls))
        frames["controls"] = ctl.with_columns(pl.col("control_id").cast(order, strict=False))


def intake_workers(size_bytes: int, *, min_bytes: int = 64 << 20) -> int:
    """Worker processes to read a file of `size_bytes` with: RADAR_INTAKE_WORKERS when set (0: none),
    else 2 for a file over `min_bytes` (a smaller one is read before workers would have started) on a
    machine with at least two cores not overloaded (1-minute load average < 2 x cores), else none.
    Workers cost CPU (~0.4 s each to start, the chunks' frames pickled back, ~10 % more in all): on 2
    cores, `radar score` of 1M sites took 28 s with them, 39 s without (load ~1.5-2); with the machine
    oversubscribed (load 6-7) they made it slower (20 s against 13 s at 200k). (Figures from before
    issue 24 item 2's second pass: batched loads, IntakePool; 1M then took ~20 s with them at load
    ~2.8, bench/bench_cli_score.py.)"""
    raw = os.environ.get("RADAR_INTAKE_WORKERS", "").strip()
    if raw:
        if not raw.isdigit():
            raise SystemExit(f"RADAR_INTAKE_WORKERS {raw!r} is not a whole number of processes")
        return int(raw)
    cores = os.cpu_count() or 1
    if size_bytes < min_bytes or cores < 2 or os.getloadavg()[0] >= 2 * cores:
        return 0
    return 2


class IntakePool:
    """`workers` processes for the per-line part of the chunks of the file `path`, started (and their
    imports done) at once: a caller creates it before its own slow setup (`radar score`: before it
    opens the warehouse) and hands it to iter_sites_jsonl. close() ends them."""

    def __init__(self, path, workers: int, *, native: bool = False):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.path, self.workers = str(path), workers
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init, initargs=(self.path,))
        # a process is spawned per submitted task while none is idle: one warm-up task each
        self._warming = [self._pool.submit(_warm, native) for _ in range(workers)]
        # the country converter's tables (~0.3-0.5 s, pandas under them), loaded meanwhile for parts();
        # not for the native intake (native.load resolves the few distinct names itself): on two
        # cores that import took CPU from DuckDB's read and the workers' check
        from concurrent.futures import Future

        self._names: Future = Future()
        self._names_loading = False
        if not native:
            self._load_names()

    def _load_names(self) -> None:
        import threading

        from radar_pipeline.sites.intake.fields import _country_names

        if self._names_loading:
            return
        self._names_loading = True

        def load() -> None:
            try:
                self._names.set_result(_country_names())
            except BaseException as exc:  # noqa: BLE001 (raised again by parts(), in the caller's thread)
                self._names.set_exception(exc)
        threading.Thread(target=load, name="radar-countries", daemon=True).start()

    def parts(self, ranges: Iterable[tuple[int, int, int]],
              reader) -> Iterator[tuple[list, tuple, Callable[[], list]]]:
        """(lines for the exact path, _per_line result, reread) for each chunk of `ranges` ((offset, line
        before it, lines), reader._ranges), in order, computed for the parent's _Reader `reader`; at
        most workers + 1 chunks are in flight, so memory stays bounded by the chunk size. reread()
        reads the chunk's lines again (here, for a duplicate id the worker accepted). The first
        chunks are submitted here, before the first result is asked for (the caller may do other
        work meanwhile)."""
        import uuid

        from radar_pipeline.sites.intake.fields import to_iso3

        # the country universe's codes resolved once here rather than in every worker (the country
        # converter's tables take ~0.5 s to load): to_iso3 is a function of the text alone
        missing = sorted(c for c in reader.countries if c not in reader.iso3_cache)
        if missing:
            self._load_names()  # started at once unless the pool was made for the native intake
            self._names.result()  # the converter's tables, loaded meanwhile by a thread
            reader.iso3_cache.update(to_iso3(missing))
        frames = tuple(f.write_ipc(None).getvalue() for f in (reader.isic, reader.saq_fields))
        args = (reader.file_name, reader.countries, frames[0], reader.controls, frames[1], reader.content_hash)
        spec = (uuid.uuid4().hex, args, dict(reader.iso3_cache))
        ranges = iter(ranges)
        pending: deque = deque((rng, self._pool.submit(_run, spec, *rng))
                               for rng in islice(ranges, self.workers + 1))
        return self._results(pending, ranges, spec)

    def _results(self, pending: deque, ranges: Iterator, spec: tuple) -> Iterator[tuple]:
        path, workers = self.path, self.workers

        def result(rng: tuple[int, int, int], future) -> tuple:
            part, lines = future.result()

            def reread() -> list:
                with open(path, "rb") as fh:
                    return _lines(fh, *rng)
            return lines, part, reread

        try:
            while pending:
                yield result(*pending.popleft())
                for rng in islice(ranges, workers + 1 - len(pending)):
                    pending.append((rng, self._pool.submit(_run, spec, *rng)))
        finally:
            for _, future in pending:
                future.cancel()

    def check(self, questions: tuple, span: tuple[int, int] | None = None) -> tuple[int, int, int]:
        """The native intake's check of every line of the file, or of its bytes `span` (a part of
        a file scored in batches, native.split_parts), by native.check_piece in the workers: (lines,
        blank lines, failed lines). Every piece (native.pieces) is submitted at once (a result is
        three numbers; a worker holds one piece at a time)."""
        from pathlib import Path

        from radar_pipeline.sites.intake.native import added, pieces

        futures = [self._pool.submit(_check, questions, *piece) for piece in pieces(Path(self.path), span=span)]
        try:
            return added(future.result() for future in futures)
        finally:
            for future in futures:
                future.cancel()

    def close(self, wait: bool = True) -> None:
        """End the workers; `wait=False`: without waiting for them to exit (~0.2 s)."""
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> IntakePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def per_line_parts(path, ranges: Iterable[tuple[int, int, int]], reader,
                   workers: int) -> Iterator[tuple[list, tuple, Callable[[], list]]]:
    """IntakePool(path, workers).parts(ranges, reader), the pool ended after the last chunk."""
    with IntakePool(path, workers) as pool:
        yield from pool.parts(ranges, reader)
