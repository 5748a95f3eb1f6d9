"""The intake with worker processes (intake/workers.py, `radar score` on a big file with a core to
spare) gives the same sites, answers, controls, findings and rejects as without, whatever the chunk
size (duplicate ids across chunks, lines over the cap, the BOM, CR LF, blank lines: the catalogue
file of test_intake_paths); its line reading by blocks and chunk ranges match readline's."""
from __future__ import annotations

import io
import random

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from radar_pipeline.sites.intake import iter_sites_jsonl
from radar_pipeline.sites.intake import reader as reader_module
from radar_pipeline.sites.intake.workers import IntakePool, _lines, intake_workers
from radar_pipeline_tests.test_bad_inputs import CONTROLS, COUNTRIES, ISIC
from radar_pipeline_tests.test_intake_paths import TABLES, _file

M = reader_module.MAX_LINE_BYTES


def _tables(path, **kw) -> dict[str, pl.DataFrame]:
    parts = list(iter_sites_jsonl(path, countries=COUNTRIES, isic=ISIC, controls=CONTROLS, **kw))
    return {name: pl.concat([getattr(p, name) for p in parts]) for name in TABLES}


@pytest.mark.parametrize("chunk", [3, 50_000])
def test_workers_give_the_same_result(tmp_path, chunk):
    path = _file(tmp_path)
    serial = _tables(path, chunk_lines=chunk, content_hash=False)
    parallel = _tables(path, chunk_lines=chunk, content_hash=False, workers=2)
    assert serial["rejects"].height > 20 and serial["sites"].height > 40
    for name in TABLES:
        assert_frame_equal(serial[name], parallel[name], check_exact=True)


def test_a_pool_started_before_the_reader_gives_the_same_result(tmp_path):
    """`radar score` starts the workers before it reads the warehouse (IntakePool) and hands them to
    iter_sites_jsonl: the same tables as without workers; the pool serves two reads in turn."""
    path = _file(tmp_path)
    serial = _tables(path, chunk_lines=7, content_hash=False)
    with IntakePool(path, 2) as pool:
        for _ in range(2):
            pooled = _tables(path, chunk_lines=7, content_hash=False, pool=pool)
            for name in TABLES:
                assert_frame_equal(serial[name], pooled[name], check_exact=True)


def _random_files(n: int, seed: int, big: bool = True):
    """Random files of short lines, and (big) lines around the 1 MiB cap."""
    rng = random.Random(seed)
    for trial in range(n):
        parts = []
        for _ in range(rng.randint(0, 10)):
            size = rng.choice([0, 1, 5, M - 1, M, M + 1, M + 2, 2 * M]) if big and trial % 5 == 0 \
                else rng.randint(0, 20)
            parts.append(b"z" * size + rng.choice([b"\n", b"\r\n", b"\r", b"", b"\n\n", b"\r\r\n"]))
        yield b"".join(parts)


def test_block_reading_matches_readline(monkeypatch):
    for block in (7, 4096, 1 << 20):  # tiny blocks on short lines only (a line over blocks is re-joined)
        monkeypatch.setattr(reader_module, "_BLOCK", block)
        for data in _random_files(40, block, big=block > 7):
            assert list(reader_module._iter_lines(io.BytesIO(data))) == \
                list(reader_module._iter_lines_readline(io.BytesIO(data)))


def test_chunk_ranges_hold_the_chunks_lines():
    for data in _random_files(80, 1):
        for chunk in (1, 2, 3, 100):
            for block in (4096, 1 << 20):
                expected = list(reader_module._batches(io.BytesIO(data), chunk))
                got = [_lines(io.BytesIO(data), *rng) for rng in reader_module._ranges(io.BytesIO(data), chunk, block)]
                assert got == expected


def test_file_ranges_give_the_ranges_and_the_line_count(tmp_path):
    """FileRanges (`radar score`: the chunks' ranges and the progress total from one read of the
    file): the ranges of _ranges, whenever lines() is asked for, and count_lines' number."""
    from radar_pipeline.platform.progress import count_lines

    path = tmp_path / "f.jsonl"
    for data in _random_files(40, 2, big=False):
        path.write_bytes(data)
        for chunk in (1, 3, 100):
            expected = list(reader_module._ranges(io.BytesIO(data), chunk))
            for before in (0, 1, 2):
                ranges = reader_module.FileRanges(path, chunk)
                got = [rng for _, rng in zip(range(before), ranges)]
                assert ranges.lines() == count_lines(path)
                assert got + list(ranges) == expected


def test_workers_setting(monkeypatch):
    monkeypatch.setenv("RADAR_INTAKE_WORKERS", "0")
    assert intake_workers(10 << 30) == 0
    monkeypatch.setenv("RADAR_INTAKE_WORKERS", "3")
    assert intake_workers(1) == 3
    monkeypatch.setenv("RADAR_INTAKE_WORKERS", "two")
    with pytest.raises(SystemExit):
        intake_workers(1)
    monkeypatch.delenv("RADAR_INTAKE_WORKERS")
    assert intake_workers(1) == 0  # a small file: read before workers would start
