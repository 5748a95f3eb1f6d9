"""The native intake of `radar score` (sites/intake/native.py: msgspec checks every line, DuckDB reads
the file) never accepts what the line-exact reader would reject, and what it loads is the line-exact
reader's rows, value for value and in the same order. Every bad or odd line of the catalogues
(test_bad_inputs.SITE_CASES, test_intake_paths.ODD), put among good lines, either sends the file to
the line-exact reader (load returns None and leaves the site tables empty) or is loaded exactly as
that reader loads it. A file of valid lines, some of them unusual (escapes, country names, nulls,
empty objects, CRLF), is loaded natively."""
from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path

import duckdb
import pytest

from radar_pipeline.platform.warehouse import ensure_schema
from radar_pipeline.sites import score_file as score_file_module
from radar_pipeline.sites.intake import iter_sites_jsonl, native
from radar_pipeline.sites.intake.fields import load_saq_fields
from radar_pipeline_tests.test_bad_inputs import CONTROLS, COUNTRIES, GOOD, ISIC, SITE_CASES
from radar_pipeline_tests.test_intake_paths import ODD

TABLES = ("sites", "site_saq", "site_controls", "site_nonconformities")
VALID_ODD = [ODD[i] for i in (0, 1, 2, 3, 4, 6, 7)]  # ODD-1..5, 7, 8: valid, unusual


def _connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_schema(con)
    con.execute("create or replace table sites as select * from sites limit 0")  # as _scoring_connection
    return con


def _rows(con) -> dict[str, list]:
    out = {}
    for table in TABLES:
        cols = [c for c in con.table(table).columns if c != "updated_at"]
        out[table] = con.sql(f"select {', '.join(cols)} from {table}").fetchall()
    return out


def _native(path: Path, *, workers: bool = False) -> tuple[int | None, dict]:
    con = _connection()
    saq_fields = load_saq_fields()
    questions = native.questions_of(saq_fields)
    if workers:
        from radar_pipeline.sites.intake.workers import IntakePool

        pool = IntakePool(path, 2)
        check = lambda: pool.check(questions)  # noqa: E731
    else:
        pool, check = None, lambda: native.check_file(path, questions)
    try:
        n = native.load(con, path, countries=COUNTRIES, isic=ISIC, controls=CONTROLS, saq_fields=saq_fields,
                        check=check, max_sites=10_000)
        return n, _rows(con)
    finally:
        con.close()
        if pool is not None:
            pool.close()


def _line_exact(path: Path) -> tuple[dict, int]:
    con = _connection()
    try:
        parts = list(iter_sites_jsonl(path, countries=COUNTRIES, isic=ISIC, controls=CONTROLS, content_hash=False))
        score_file_module._load_parts(con, parts)
        return _rows(con), sum(p.rejects.height for p in parts)
    finally:
        con.close()


def _good(n: int = 12) -> list[str]:
    return [json.dumps({**GOOD, "site_id": f"OK-{i}", "controls": ["ppe_enforced", "written_policy"][: i % 3],
                        "audits": GOOD["audits"][: i % 2]}) for i in range(n)]


def _write(tmp_path: Path, lines: list[bytes | str], name: str = "sites.jsonl", end: bytes = b"\n") -> Path:
    path = tmp_path / name
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + end)
    return path


def test_a_valid_file_is_loaded_natively_as_the_line_exact_reader_loads_it(tmp_path):
    lines = _good()[:6] + VALID_ODD + _good()[6:]
    path = _write(tmp_path, lines)
    n, rows = _native(path)
    expected, rejects = _line_exact(path)
    assert rejects == 0
    assert n == len(lines)
    assert rows == expected
    assert [r[-2] for r in rows["sites"]] == list(range(1, len(lines) + 1))  # source_line: the file's lines
    # checked by msgspec in worker processes (IntakePool.check, as `radar score` does for a big file)
    assert _native(path, workers=True) == (n, rows)


def test_crlf_and_no_final_newline(tmp_path):
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b"\r\n".join(x.encode() for x in _good(5)))
    n, rows = _native(path)
    assert n == 5 and rows == _line_exact(path)[0]


# what a strict reader and a lenient one could disagree on (DuckDB's reader coerces types, drops
# unknown keys, takes NaN and trailing commas; msgspec keeps the last of a repeated key)
EXTRA = [
    ("escaped_repeated_key", '{"site_id": "E-1", "site\\u005fid": "E-2", "country": "BGD", "isic": "1410"}'),
    ("key_in_other_case", '{"site_id": "E-1", "Site_ID": "E-2", "country": "BGD", "isic": "1410"}'),
    ("repeated_audit_key", '{"site_id": "E-1", "country": "BGD", "isic": "1410", "audits": '
                           '[{"nc_id": "N", "severity": "major", "status": "open", "status": "closed"}]}'),
    ("string_number", '{"site_id": "E-1", "country": "BGD", "isic": "1410", "saq": {"migrant_pct": "12"}}'),
    ("number_for_string", '{"site_id": "E-1", "country": "BGD", "isic": 1410}'),
    ("object_for_string", '{"site_id": "E-1", "country": {"iso3": "BGD"}, "isic": "1410"}'),
    ("number_for_boolean", '{"site_id": "E-1", "country": "BGD", "isic": "1410", "saq": {"piece_rate": 0}}'),
    ("string_for_boolean", '{"site_id": "E-1", "country": "BGD", "isic": "1410", "saq": {"piece_rate": "true"}}'),
    ("infinity", '{"site_id": "E-1", "country": "BGD", "isic": "1410", "saq": {"migrant_pct": Infinity}}'),
    ("huge_exponent", '{"site_id": "E-1", "country": "BGD", "isic": "1410", "saq": {"migrant_pct": 1e400}}'),
    ("huge_integer", '{"site_id": "E-1", "country": "BGD", "isic": "1410", '
                     '"saq": {"workers_total": 9007199254740993}}'),
    ("whole_float_integer", '{"site_id": "E-1", "country": "BGD", "isic": "1410", "saq": {"workers_total": 12.0}}'),
    ("trailing_comma_in_list", '{"site_id": "E-1", "country": "BGD", "isic": "1410", "controls": ["ppe_enforced",]}'),
    ("unknown_control", '{"site_id": "E-1", "country": "BGD", "isic": "1410", "controls": ["not_a_control"]}'),
    ("control_of_a_number", '{"site_id": "E-1", "country": "BGD", "isic": "1410", "controls": [5]}'),
    ("finding_not_an_object", '{"site_id": "E-1", "country": "BGD", "isic": "1410", "audits": ["NC-1"]}'),
    ("saq_a_list", '{"site_id": "E-1", "country": "BGD", "isic": "1410", "saq": [1]}'),
    ("lone_surrogate", '{"site_id": "E-1", "site_name": "\\ud800", "country": "BGD", "isic": "1410"}'),
    ("nul_in_name", '{"site_id": "E-1", "site_name": "a\\u0000b", "country": "BGD", "isic": "1410"}'),
]
CASES = ([(name, line) for name, line, _, _ in SITE_CASES] + [(f"odd_{i}", line) for i, line in enumerate(ODD)]
         + EXTRA)


@pytest.mark.parametrize(("name", "line"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_or_odd_line_is_never_loaded_otherwise_than_by_the_line_exact_reader(tmp_path, name, line):
    good = _good()
    path = _write(tmp_path, [*good[:5], line, *good[5:]])
    n, rows = _native(path)
    expected, rejects = _line_exact(path)
    if n is None:
        assert all(not r for r in rows.values()), "nothing is loaded when the file is left to the line-exact reader"
    else:
        assert rejects == 0, f"{name}: loaded natively although the line-exact reader rejects a line"
        assert rows == expected


def test_a_repeated_site_id_or_a_blank_line_leaves_the_file_to_the_line_exact_reader(tmp_path):
    good = _good()
    assert _native(_write(tmp_path, [*good, good[3]], "repeat.jsonl"))[0] is None
    assert _native(_write(tmp_path, [*good[:3], "", *good[3:]], "blank.jsonl"))[0] is None
    assert _native(_write(tmp_path, good, "bom.jsonl") if False else _bom(tmp_path, good))[0] is None


def _bom(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n")
    return path


def test_a_date_polars_reads_otherwise_leaves_the_file_to_the_line_exact_reader(tmp_path):
    """intake_date (SQL) is used only when it reads every date of the file as the fast path's polars
    parse does: an unpadded date is left to the line-exact reader."""
    finding = {**GOOD["audits"][0], "raised_on": "2024-3-2"}
    line = json.dumps({**GOOD, "site_id": "DATE-1", "audits": [finding]})
    path = _write(tmp_path, [*_good(), line])
    n, rows = _native(path)
    expected, rejects = _line_exact(path)
    assert n is None or (rejects == 0 and rows == expected)


def test_over_max_sites_is_left_to_the_chunked_path(tmp_path):
    path = _write(tmp_path, _good())
    con = _connection()
    saq_fields = load_saq_fields()
    try:
        assert native.load(con, path, countries=COUNTRIES, isic=ISIC, controls=CONTROLS, saq_fields=saq_fields,
                           check=lambda: native.check_file(path, native.questions_of(saq_fields)),
                           max_sites=5) is None
    finally:
        con.close()


def test_the_workers_check_gives_the_same_counts(tmp_path, monkeypatch):
    """IntakePool.check splits the file into pieces at line starts (native.pieces): every line is
    checked once, whatever the piece size."""
    lines = _good(40)
    lines[17] = '{"site_id": "X", "country": "BGD", "isic": "1410", "zz": 1}'
    lines[30] = ""
    path = _write(tmp_path, lines, end=b"")
    questions = native.questions_of(load_saq_fields())
    assert native.check_file(path, questions) == (40, 1, 1)
    for size in (1, 100, 1000, 1 << 20):
        cuts = native.pieces(path, size)
        assert cuts[0][0] == 0 and cuts[-1][1] == path.stat().st_size
        assert all(a[1] == b[0] for a, b in itertools.pairwise(cuts))
        with open(path, "rb") as fh:
            counts = [native.check_piece(fh, a, b, questions) for a, b in cuts]
        assert tuple(map(sum, zip(*counts))) == (40, 1, 1)
    from radar_pipeline.sites.intake.workers import IntakePool

    monkeypatch.setattr(native, "PIECE_BYTES", 700)
    with IntakePool(path, 2) as pool:
        assert pool.check(questions) == (40, 1, 1)


@pytest.mark.parametrize("end", [b"\n", b"", b"\r\n", b"\n\n"])
def test_the_whole_piece_check_counts_as_the_line_by_line_check(end):
    """native.check_bytes (split, decode, look again only at what fails) against check_lines over
    reader._iter_lines (the reference): blank, whitespace-only and CR lines, lines at and over the
    size cap with and without CRs, a bad last line without newline."""
    import io

    from radar_pipeline.sites.intake.fields import MAX_LINE_BYTES
    from radar_pipeline.sites.intake.reader import _iter_lines

    questions = native.questions_of(load_saq_fields())
    good = _good(3)
    padded = good[0][:-1] + " " * (MAX_LINE_BYTES - len(good[0])) + "}"  # valid, exactly at the cap
    assert len(padded) == MAX_LINE_BYTES
    lines = [good[0], "", "   ", "\t", "\x0c", good[1] + "\r", good[2] + "\r\r", "\r", "{", "[]", "null",
             '{"site_id": "X", "country": "BGD", "isic": "1410", "zz": 1}', padded, padded + "\r",
             padded + "\r\r", padded + " ", good[0] + ",", "\ufeff" + good[1]]
    for last in ["", good[0], "{", padded, padded + "\r", "  "]:
        data = "\n".join([*lines, last]).encode() + end
        expected = native.check_lines(_iter_lines(io.BytesIO(data)), questions)
        assert native.check_bytes(data, questions) == expected, (last, end)
    assert native.check_bytes(("\n".join(lines) + "\n").encode(), questions) == (18, 5, 8)


@pytest.mark.parametrize("kernel_copy", [True, False])
@pytest.mark.parametrize("end", [b"\n", b""])
def test_split_parts_cuts_a_file_at_line_ends_into_parts_of_at_most_n_lines(tmp_path, monkeypatch, end,
                                                                            kernel_copy):
    """Each part the file's own bytes, ending after a newline (or at the file's end), with the
    lines check_bytes counts; copied by the kernel or, where it cannot, through Python."""
    if not kernel_copy:
        import os

        def refused(*_a):
            raise OSError(95, "Operation not supported")

        monkeypatch.setattr(os, "copy_file_range", refused)
    lines = [f'{{"n": {i}}}' + ("x" * (i % 7)) for i in range(23)]
    path = _write(tmp_path, lines, end=end)
    folder = tmp_path / "parts"
    folder.mkdir()
    for max_lines, block in ((5, 64), (5, 1 << 20), (23, 7), (100, 64), (1, 3)):
        got, starts = [], []
        for part in native.split_parts(path, max_lines, folder, block_bytes=block):
            data = part.path.read_bytes()
            assert path.read_bytes()[part.start:part.end] == data
            assert part.lines == len(data.split(b"\n")) - data.endswith(b"\n") <= max_lines
            got.append(data)
            starts.append(part.first_line)
            part.path.unlink()
        assert b"".join(got) == path.read_bytes()
        assert all(d.endswith(b"\n") for d in got[:-1])
        assert starts == list(range(0, 23, max_lines)), (max_lines, block)
        assert not list(folder.iterdir())


def test_a_part_of_a_bigger_file_keeps_that_files_name_and_line_numbers(tmp_path):
    path = _write(tmp_path, _good(4), name="part_00001.jsonl")
    questions = native.questions_of(load_saq_fields())
    con = _connection()
    try:
        assert native.load(con, path, countries=COUNTRIES, isic=ISIC, controls=CONTROLS,
                           saq_fields=load_saq_fields(), check=lambda: native.check_file(path, questions),
                           max_sites=10, file_name="all_sites.jsonl", first_line=250) == 4
        assert con.sql("select source_file, source_line from sites order by source_line").fetchall() == [
            ("all_sites.jsonl", 251), ("all_sites.jsonl", 252), ("all_sites.jsonl", 253), ("all_sites.jsonl", 254)]
    finally:
        con.close()


def test_an_empty_file_loads_no_sites(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert native.fits(path, 10)
    n, rows = _native(path)
    assert n == 0 and all(not r for r in rows.values())


def _fails_at_once():
    raise RuntimeError("a worker died")


def _fails_after_the_read():
    deadline = time.monotonic() + 30
    while any(t.name == "radar-native-read" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the read did not finish"
        time.sleep(0.01)
    raise RuntimeError("a worker died")


@pytest.mark.parametrize("check", [_fails_at_once, _fails_after_the_read], ids=["during the read", "after it"])
def test_a_failing_check_stops_the_load_and_leaves_nothing(tmp_path, check):
    """A worker lost or Ctrl-C while msgspec checks: the error reaches the caller, DuckDB's read is
    interrupted rather than waited for, and no site is loaded. The read may also have finished
    before the check fails (a worker lost late, a loaded machine): its temp table is dropped too."""
    path = _write(tmp_path, _good())
    con = _connection()
    try:
        with pytest.raises(RuntimeError, match="worker died"):
            native.load(con, path, countries=COUNTRIES, isic=ISIC, controls=CONTROLS, saq_fields=load_saq_fields(),
                        check=check, max_sites=100)
        assert all(not r for r in _rows(con).values())
        assert not con.sql("select * from duckdb_tables() where table_name like 'intake_%'").fetchall()
    finally:
        con.close()
