"""Worker processes for the per-line part of the intake (orjson, the fast path's checks and
column-wise frames: `reader._per_line`), which is bound to one core by the GIL. The parent finds the
chunks' byte ranges (counting newlines: reader._ranges), each worker reads its chunk's lines from the
file itself (the lines never cross a pipe) and sends back the fast path's frames and the few lines
it left to the exact path; the parent does the rest in line order (duplicate ids across chunks, the
exact path, the tables): so the result is the same as without workers, chunk for chunk
(radar_pipeline_tests/test_intake_workers.py).

Spawned, not forked: the parent runs polars' and DuckDB's thread pools, which a fork would copy in
whatever state their locks are in. A worker imports the intake modules only. As with any spawned
process, a script that starts them must guard its top level with `if __name__ == "__main__":`
(`radar` and `python -m radar_pipeline.cli` do)."""
from __future__ import annotations

import gc
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator

_READER = None  # the worker's own _Reader (no duplicate tracking: that is the parent's)
_FILE = None  # the worker's handle on the file


def _init(path: str, args: tuple, iso3_seed: dict[str, str | None]) -> None:
    global _READER, _FILE
    # one polars thread per worker: the workers are the parallelism (idle pool threads spinning in
    # every process cost CPU the others need); set before polars is imported here (the frames come
    # as Arrow IPC bytes for that reason)
    os.environ["POLARS_MAX_THREADS"] = "1"
    import io

    import polars as pl

    from radar_pipeline.sites.intake.reader import _Reader

    file_name, countries, isic, controls, saq_fields, content_hash = args
    _READER = _Reader(file_name, countries, pl.read_ipc(io.BytesIO(isic)), controls,
                      pl.read_ipc(io.BytesIO(saq_fields)), content_hash)
    _READER.iso3_cache.update(iso3_seed)
    _FILE = open(path, "rb")  # the worker's, for its lifetime
    gc.disable()  # as _Reader.chunk does: the parsed objects make no cycles; a worker holds nothing else


def _lines(fh, offset: int, first: int, n: int) -> list:
    """The `n` lines from byte `offset` (the one before them numbered `first`), as _iter_lines reads them."""
    from itertools import islice

    from radar_pipeline.sites.intake.reader import _iter_lines

    fh.seek(offset)
    return list(islice(_iter_lines(fh, first), n))


def _run(offset: int, first: int, n: int) -> tuple:
    """A chunk's per-line part, read from the file here (the lines never cross a pipe), and the
    lines the parent needs for the exact path (those the fast path left to it or found breaking a rule)."""
    from radar_pipeline.sites.intake.reader import _per_line

    lines = _lines(_FILE, offset, first, n)
    try:
        part = _per_line(_READER, lines)
        wanted = set(part[2]) | part[5]  # slow line numbers, bad lines
        return part, [item for item in lines if item[0] in wanted] if wanted else []
    finally:
        del lines
        gc.collect(0)


def intake_workers(size_bytes: int, *, min_bytes: int = 64 << 20) -> int:
    """Worker processes to read a file of `size_bytes` with: RADAR_INTAKE_WORKERS when set (0: none),
    else 2 for a file over `min_bytes` (a smaller one is read before workers would have started) on a
    machine with at least two cores not overloaded (1-minute load average < 2 x cores), else none.
    Workers cost CPU (~0.5 s each to start, the chunks' frames pickled back, ~10 % more in all): on 2
    cores, `radar score` of 1M sites took 28 s with them, 39 s without (load ~1.5-2); with the machine
    oversubscribed (load 6-7) they made it slower (20 s against 13 s at 200k)."""
    raw = os.environ.get("RADAR_INTAKE_WORKERS", "").strip()
    if raw:
        if not raw.isdigit():
            raise SystemExit(f"RADAR_INTAKE_WORKERS {raw!r} is not a whole number of processes")
        return int(raw)
    cores = os.cpu_count() or 1
    if size_bytes < min_bytes or cores < 2 or os.getloadavg()[0] >= 2 * cores:
        return 0
    return 2


def per_line_parts(path, ranges: Iterable[tuple[int, int, int]], reader,
                   workers: int) -> Iterator[tuple[list, tuple, Callable[[], list]]]:
    """(lines for the exact path, _per_line result, reread) for each chunk of `ranges` ((offset, line
    before it, lines), reader._ranges), in order, computed by `workers` processes for the parent's
    _Reader `reader`; at most workers + 1 chunks are in flight, so memory stays bounded by the chunk
    size. reread() reads the chunk's lines again (here, for a duplicate id the worker accepted)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from radar_pipeline.sites.intake.fields import to_iso3

    # the country universe's codes resolved once here rather than in every worker (the country
    # converter's tables take ~0.5 s to load): to_iso3 is a function of the text alone
    missing = sorted(c for c in reader.countries if c not in reader.iso3_cache)
    if missing:
        reader.iso3_cache.update(to_iso3(missing))
    frames = tuple(f.write_ipc(None).getvalue() for f in (reader.isic, reader.saq_fields))
    args = (reader.file_name, reader.countries, frames[0], reader.controls, frames[1], reader.content_hash)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init, initargs=(str(path), args, dict(reader.iso3_cache)))

    def result(rng: tuple[int, int, int], future) -> tuple:
        part, lines = future.result()

        def reread() -> list:
            with open(path, "rb") as fh:
                return _lines(fh, *rng)
        return lines, part, reread

    try:
        pending: deque = deque()
        for rng in ranges:
            pending.append((rng, pool.submit(_run, *rng)))
            if len(pending) > workers:
                yield result(*pending.popleft())
        while pending:
            yield result(*pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
