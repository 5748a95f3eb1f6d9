"""Progress output of long CLI work: a bar on a terminal, one line per chunk in a log, silence for short work."""
from __future__ import annotations

import io

from radar_pipeline.platform.progress import Progress, count_lines


def test_log_gets_one_line_per_chunk_with_counts():
    log = io.StringIO()
    with Progress("score", total=120_000, stream=log, tty=False) as bar:
        for n in (50_000, 50_000, 20_000):
            bar.update(n, rejected=3)
    lines = log.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("score: 50000/120000 sites (42%)") and "rejected 3" in lines[0]
    assert lines[-1].startswith("score: 120000/120000 sites (100%)")
    assert "\r" not in log.getvalue()


def test_short_work_is_quiet_and_unknown_totals_show_once_long():
    log = io.StringIO()
    with Progress("ingest", total=1_000, stream=log, tty=False) as bar:
        bar.update(1_000)
    assert log.getvalue() == ""
    with Progress("ingest", stream=log, tty=False) as bar:  # total unknown
        bar.update(30_000)
        bar.update(30_000)
    (line,) = log.getvalue().splitlines()  # nothing at 30k, one line once it passed 50k
    assert line.startswith("ingest: 60000 sites in ")


def test_terminal_gets_a_bar():
    term = io.StringIO()
    with Progress("score", total=100_000, stream=term, tty=True) as bar:
        bar.update(50_000)
        bar.update(50_000)
    out = term.getvalue()
    assert "\r" in out and "100%" in out and "100k/100k" in out


def test_count_lines(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_bytes(b"a\nb\nc")
    assert count_lines(f, block=2) == 3
    f.write_bytes(b"a\nb\n")
    assert count_lines(f) == 2
    f.write_bytes(b"")
    assert count_lines(f) == 0
