"""Side inputs validated like a site file, read in blocks and only when changed (issue 22 items
2 and 3): overrides, buyer lists, user indicator files and a RADAR_RULES_DIR. Synthetic files only."""
from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from radar_pipeline.platform import settings, text_input
from radar_pipeline.publish import buyers
from radar_pipeline.rules import check as rules_check
from radar_pipeline.rules import rule_sql
from radar_pipeline.rules.methodology import CATEGORIES
from radar_pipeline.sites import overrides
from radar_pipeline.sources.toolkit import LandedFile, SourceError

HEADER = "site_id,category,reason,author,created_on,expires_on\n"


# ---------------------------------------------------------------- encoding and free text

@pytest.mark.parametrize("data, why", [
    ("a,b\ncafé,1\n".encode("latin-1"), "byte 0xe9 at offset 7"),
    ("a,b\n1,2\n".encode("utf-16"), "UTF-16 byte-order mark"),
    (b"PK\x03\x04\x00\x00binary", "NUL byte"),
    ("a,b\nx,\u00e9".encode()[:-1], "ends inside a character"),
])
def test_scan_refuses_what_is_not_utf8_naming_file_and_reason(tmp_path, data, why):
    path = tmp_path / "x.csv"
    path.write_bytes(data)
    with pytest.raises(text_input.NotText, match=rf"^{path}: not UTF-8 text .*{why}"):
        text_input.scan_file(path)


def test_scan_accepts_utf8_with_and_without_bom_and_hashes_content(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_bytes("a,b\nZürich,1\n".encode())
    b.write_bytes(b"\xef\xbb\xbf" + "a,b\nZürich,1\n".encode())
    assert text_input.scan_file(a).sha256 != text_input.scan_file(b).sha256
    assert text_input.scan_file(a).size == a.stat().st_size


def test_clean_text_python_and_polars_agree():
    samples = ["=cmd|' /C calc'!A0", "+1", "-x", "@SUM(A1)", "  \t=lead", "ok\x07bell\x1b[31m",
               "bidi \u202eevil\u2066", "\x01\x02", "plain text", "\r\n=x", "tab\tinside", "a\nb", ""]
    polars_side = pl.DataFrame({"t": samples}).select(text_input.clean_text_expr(pl.col("t")))["t"].to_list()
    assert polars_side == [text_input.clean_text(s) for s in samples]
    assert text_input.clean_text("=cmd") == "'=cmd" and text_input.clean_text("ok\x07") == "ok"
    assert overrides.clean_text is text_input.clean_text  # one function
    con = duckdb.connect()
    rule_sql.install(con)  # the macro the publish SQL applies to site names and override text
    sql_side = [con.execute("select clean_text($t)", {"t": t}).fetchone()[0] for t in samples]
    assert sql_side == polars_side


def test_published_free_text_goes_through_clean_text():
    for name in ("site_scores_history", "site_nonconformities"):
        sql = (settings.SQL_DIR / "publish" / f"{name}.sql").read_text(encoding="utf-8")
        assert "clean_text(t.site_name)" in sql or "clean_text(s.site_name)" in sql, name


# ---------------------------------------------------------------- overrides

def _overrides_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "overrides"
    folder.mkdir()
    (folder / "a_good.csv").write_text(HEADER + "S1,Low,fine,ana,2026-01-01,\n"
                                       'S3,High,"two\nlines",bo,2026-01-02,\n'
                                       "S4,Severe,x,bo,2026-01-01,\n", encoding="utf-8")
    (folder / "b_latin1.csv").write_bytes((HEADER + "S5,Low,café,ana,2026-01-01,\n").encode("latin-1"))
    (folder / "c_utf16.csv").write_bytes((HEADER + "S6,Low,x,ana,2026-01-01,\n").encode("utf-16"))
    (folder / "d_binary.csv").write_bytes(b"\x00\x01\x02PK")
    (folder / "e_long.csv").write_text(HEADER + "S7,Low," + "x" * 131_073 + ",ana,2026-01-01,\n")
    os.symlink(tmp_path / "nowhere.csv", folder / "f_dangling.csv")
    (folder / "g_folder.csv").mkdir()
    (folder / "h_truncated.csv").write_text(HEADER + 'S8,Low,"never closed,ana,2026-01-01,\n')
    return folder


def test_unreadable_override_files_are_one_reject_each_and_the_rest_applies(tmp_path):
    read = overrides.read_overrides(_overrides_folder(tmp_path))
    assert read.valid.select("site_id", "line").rows() == [("S1", 2), ("S3", 3)]
    assert read.valid.filter(pl.col("site_id") == "S3")["reason"].item() == "two\nlines"
    why = {(r["file"], r["field"]): (r["line"], r["reason"]) for r in read.rejects.iter_rows(named=True)}
    assert why[("a_good.csv", "category")][0] == 5  # the record after a two-line cell: editor line 5
    assert "Latin-1" in why[("b_latin1.csv", "file")][1] and "0xe9" in why[("b_latin1.csv", "file")][1]
    assert "UTF-16" in why[("c_utf16.csv", "file")][1]
    assert "NUL byte" in why[("d_binary.csv", "file")][1]
    assert why[("e_long.csv", "reason")] == (2, f"reason is longer than {overrides.MAX_TEXT} characters")
    assert "symlink" in why[("f_dangling.csv", "file")][1]
    assert why[("g_folder.csv", "file")][1] == "not a regular file"
    assert "never closed" in why[("h_truncated.csv", "file")][1]
    lines = overrides.reject_lines(read.rejects)
    assert any(ln.startswith("override rejected: c_utf16.csv file: not UTF-8 text") for ln in lines)


def test_scoring_path_reads_hostile_overrides_without_a_raw_error(tmp_path, monkeypatch):
    """The path every scoring run takes (scoring._load_overrides -> read_overrides): temp tables
    with the good rows and every reject, never a UnicodeDecodeError."""
    from radar_pipeline.sites import scoring

    monkeypatch.setenv("RADAR_OVERRIDES", str(_overrides_folder(tmp_path)))
    con = duckdb.connect()
    scoring._load_overrides(con, None)
    assert con.sql("select site_id from site_overrides_in_force order by 1").fetchall() == [("S1",), ("S3",)]
    files = {r[0] for r in con.sql("select file from site_override_rejects").fetchall()}
    assert {"b_latin1.csv", "c_utf16.csv", "d_binary.csv", "f_dangling.csv", "g_folder.csv"} <= files


def test_overrides_parsed_again_only_when_the_content_changes(tmp_path, monkeypatch):
    folder = tmp_path / "o"
    folder.mkdir()
    path = folder / "x.csv"
    path.write_text(HEADER + "S1,Low,first,ana,2026-01-01,\n")
    calls = []
    real = overrides._checked
    monkeypatch.setattr(overrides, "_checked", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert overrides.read_overrides(folder).valid["reason"].to_list() == ["first"]
    assert overrides.read_overrides(folder).valid["reason"].to_list() == ["first"]
    assert len(calls) == 1  # unchanged: hashed, not parsed
    stat = path.stat()
    path.write_text(HEADER + "S1,Low,again,ana,2026-01-01,\n")  # same size, same mtime
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert overrides.read_overrides(folder).valid["reason"].to_list() == ["again"]
    assert len(calls) == 2


_COUNT_PARSES = """
import sys
from radar_pipeline.sites import overrides
calls = []
real = overrides._checked
overrides._checked = lambda *a, **k: calls.append(1) or real(*a, **k)
read = overrides.read_overrides(sys.argv[1])
print(len(calls), read.valid["reason"].to_list(), read.rejects["reason"].to_list())
"""


def _parse_in_a_new_process(folder: Path) -> str:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _COUNT_PARSES, str(folder)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _entries(kind: str) -> list[str]:
    from radar_pipeline.platform import parse_cache

    folder = parse_cache.cache_root() / "parsed" / kind
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_overrides_are_not_parsed_again_by_a_new_process_until_they_change(tmp_path):
    """Every Dagster run is a new process: an unchanged overrides file is read from the parse
    cache (hashed, not parsed), an edited one parsed again, and only its newest entry kept."""
    folder = tmp_path / "o"
    folder.mkdir()
    path = folder / "x.csv"
    path.write_text(HEADER + "S1,Low,first,ana,2026-01-01,\nS2,Nope,bad,ana,2026-01-01,\n")
    before = _entries("overrides")
    reasons = f"['first'] [\"category 'Nope' is not one of {list(CATEGORIES)}\"]"
    assert _parse_in_a_new_process(folder) == f"1 {reasons}"
    assert len(set(_entries("overrides")) - set(before)) == 1
    assert _parse_in_a_new_process(folder) == f"0 {reasons}"  # the same rows and rejects, unparsed
    path.write_text(HEADER + "S1,Low,second,ana,2026-01-01,\n")
    assert _parse_in_a_new_process(folder).startswith("1 ['second']")
    assert len(set(_entries("overrides")) - set(before)) == 1  # the older content's entry is gone
    assert _parse_in_a_new_process(folder).startswith("0 ['second']")


def test_an_override_entry_with_a_future_created_on_is_not_reused(tmp_path, monkeypatch):
    """"created_on is in the future" depends on the day: an entry holds only from the latest
    created_on its file gives (here never, in this century), so such a file is parsed each time."""
    folder = tmp_path / "o"
    folder.mkdir()
    (folder / "x.csv").write_text(HEADER + "S1,Low,ok,ana,2026-01-01,\nS2,Low,later,ana,2999-01-01,\n")
    calls = []
    real = overrides._checked
    monkeypatch.setattr(overrides, "_checked", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = overrides.read_overrides(folder)
    assert first.rejects["reason"].to_list() == ["created_on 2999-01-01 is in the future"]
    overrides._PARSED.clear()  # as a new process would start
    again = overrides.read_overrides(folder)
    assert len(calls) == 2 and again.rejects.equals(first.rejects) and again.valid.equals(first.valid)


def test_a_damaged_or_planted_parse_cache_is_parsed_around(tmp_path, monkeypatch, caplog):
    """The cache is an optimisation: a damaged entry is parsed again, and a symlink planted in the
    cache is neither read through nor written through."""
    from radar_pipeline.platform import parse_cache

    monkeypatch.setenv("RADAR_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "o"
    folder.mkdir()
    (folder / "x.csv").write_text(HEADER + "S1,Low,ok,ana,2026-01-01,\n")
    overrides.read_overrides(folder)
    (entry,) = (tmp_path / "cache" / "parsed" / "overrides").iterdir()
    (entry / "frame_0_000000.arrow").write_bytes(b"not arrow")
    overrides._PARSED.clear()
    assert overrides.read_overrides(folder).valid["reason"].to_list() == ["ok"]
    assert "not used" in caplog.text
    # a link planted where the kind's folder goes: nothing read or written through it
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    parse_cache.safe_paths.remove(tmp_path / "cache", tmp_path / "cache" / "parsed" / "overrides")
    os.symlink(elsewhere, tmp_path / "cache" / "parsed" / "overrides")
    overrides._PARSED.clear()
    calls = []
    real = overrides._checked
    monkeypatch.setattr(overrides, "_checked", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert overrides.read_overrides(folder).valid["reason"].to_list() == ["ok"]
    assert list(elsewhere.iterdir()) == [] and "symlink" in caplog.text and len(calls) == 1
    # a cache that fails in the middle of a write (disk full): the rows that went to it are parsed again
    os.unlink(tmp_path / "cache" / "parsed" / "overrides")

    def disk_full(self, index):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(parse_cache.Writer, "_flush", disk_full)
    overrides._PARSED.clear()
    assert overrides.read_overrides(folder).valid["reason"].to_list() == ["ok"] and len(calls) == 3
    assert "No space left" in caplog.text
    assert [p.name for p in (tmp_path / "cache" / "parsed" / "overrides").iterdir()] == []  # no leftover


def test_override_known_sites_and_rules_shared_with_append(tmp_path):
    folder = tmp_path / "o"
    folder.mkdir()
    (folder / "x.csv").write_text(HEADER + "S1,Low,ok,ana,2026-01-01,\nS9,Low,ok,ana,2026-01-01,\n")
    read = overrides.read_overrides(folder, known_sites={"S1"})
    assert read.valid["site_id"].to_list() == ["S1"]
    assert read.rejects.select("line", "field").rows() == [(3, "site_id")]
    future = {"site_id": "S1", "category": "Low", "reason": "=x", "author": "a", "created_on": "9999-12-31"}
    assert overrides.validate_row(future) == [("created_on", "created_on 9999-12-31 is in the future")]
    assert overrides.validate_row({"site_id": "S1", "category": "Low", "reason": "r", "author": "a",
                                   "created_on": date.today().isoformat()}) == []


# ---------------------------------------------------------------- buyer lists

def test_buyer_csv_not_utf8_is_refused_with_file_and_reason(tmp_path):
    (tmp_path / "a.csv").write_text("buyer_id,site_id\nacme,S1\n")
    (tmp_path / "b.csv").write_bytes("buyer_id,site_id\nacmé,S2\n".encode("latin-1"))
    (tmp_path / "c.csv").write_bytes("buyer_id,site_id\nzeta,S3\n".encode("utf-16"))
    (tmp_path / "d.csv").write_text('buyer_id,site_id\nzeta,"S4\n')
    load = buyers.read_folder(tmp_path)
    assert load.rows.select("buyer_id", "site_id").rows() == [("acme", "S1")]
    why = {r["file"]: r["reason"] for r in load.rejects.iter_rows(named=True)}
    assert set(why) == {"b.csv", "c.csv", "d.csv"}
    assert "not UTF-8 text" in why["b.csv"] and "UTF-16" in why["c.csv"] and "never closed" in why["d.csv"]


def test_buyer_csv_blocks_keep_lines_and_first_duplicate(tmp_path, monkeypatch):
    monkeypatch.setattr(buyers, "CSV_BLOCK", 16)  # many tiny blocks
    rows = [f"b{i % 3},S{i}" for i in range(40)] + ["bad id!,S1", "b0,S0"]
    (tmp_path / "a.csv").write_text("buyer_id,site_id\n" + "\n".join(rows) + "\n")
    load = buyers.read_folder(tmp_path)
    assert load.rows.height == 40 and load.rows["source_line"].to_list() == list(range(2, 42))
    assert load.rejects.select("line").rows() == [(42,)]


def test_buyer_csv_row_with_too_many_fields_is_rejected_alone(tmp_path, monkeypatch):
    """Issue 22 item 2: one line with an extra cell used to reject the whole file."""
    monkeypatch.setattr(buyers, "CSV_BLOCK", 32)  # the bad line in a later block
    rows = [f"acme,S{i}" for i in range(12)]
    (tmp_path / "a.csv").write_text("buyer_id,site_id\nacme,S98,first\n" + "\n".join(rows[:6])
                                    + "\nacme,S99,oops\n" + "\n".join(rows[6:]) + "\nacme,S12,\n")
    load = buyers.read_folder(tmp_path)
    assert load.rows["site_id"].to_list() == [f"S{i}" for i in range(13)]  # a trailing comma is fine
    assert load.rows["source_line"].to_list() == [*range(3, 9), *range(10, 17)]
    assert load.rejects.rows() == [("a.csv", 2, "acme", "S98", "3 fields, the header has 2 (extra cell 'first')"),
                                   ("a.csv", 9, "acme", "S99", "3 fields, the header has 2 (extra cell 'oops')")]


def test_override_row_with_too_many_fields_is_rejected_alone(tmp_path):
    folder = tmp_path / "o"
    folder.mkdir()
    (folder / "x.csv").write_text(HEADER + "S1,Low,ok,ana,2026-01-01,\nS2,Low,ok,ana,2026-01-01,,surplus\n"
                                  "S3,High,ok,ana,2026-01-01,\n")
    read = overrides.read_overrides(folder)
    assert read.valid["site_id"].to_list() == ["S1", "S3"]
    assert read.rejects.rows() == [("x.csv", 3, "S2", "line", "7 fields, the header has 6 (extra cell 'surplus')")]


def test_buyer_load_streams_into_the_warehouse_and_skips_an_unchanged_folder(tmp_path, monkeypatch):
    from radar_pipeline.platform.warehouse import ensure_schema

    inbox = tmp_path / "buyers"
    inbox.mkdir()
    (inbox / "a.csv").write_text("buyer_id,site_id\nacme,S1\nacme,S2\nacme,S1\nbad id!,S3\n")
    (inbox / "b.jsonl").write_text('{"buyer_id": "zeta", "site_id": "S1"}\nnot json\n')
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    ensure_schema(con)
    load = buyers.load(con, inbox)
    assert (load.n_rows, load.buyers, load.rejects.height) == (3, ["acme", "zeta"], 2)
    assert con.sql("select buyer_id, site_id, source_line from buyer_sites order by all").fetchall() == [
        ("acme", "S1", 2), ("acme", "S2", 3), ("zeta", "S1", 1)]
    calls = []
    real = buyers._folder_blocks
    monkeypatch.setattr(buyers, "_folder_blocks", lambda *a: calls.append(1) or real(*a))
    assert buyers.load(con, inbox).n_rows == 3 and calls == []  # unchanged: not read again
    # another process (a new run): the record in the warehouse says the bytes are the ones loaded
    buyers._LOADED.clear()
    again = buyers.load(con, inbox)
    assert calls == [] and (again.n_rows, again.buyers, again.files) == (3, ["acme", "zeta"], load.files)
    assert again.rejects.sort("file", "line").rows() == load.rejects.sort("file", "line").rows()
    con.execute("delete from buyer_sites where site_id = 'S2'")  # the table no longer holds what it stored
    buyers._LOADED.clear()
    assert buyers.load(con, inbox).n_rows == 3 and calls == [1]
    calls.clear()
    (inbox / "a.csv").write_text("buyer_id,site_id\nacme,S9\n")
    assert buyers.load(con, inbox).n_rows == 2 and calls == [1]
    assert con.sql("select site_id from buyer_sites where buyer_id = 'acme'").fetchall() == [("S9",)]


def _warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    from radar_pipeline.platform.warehouse import ensure_schema

    con = duckdb.connect(str(path))
    ensure_schema(con)
    return con


def test_buyer_load_keeps_the_first_line_of_each_pair_like_the_reader(tmp_path, monkeypatch):
    """The load deduplicates outside the warehouse (staged blocks + a spilling aggregate on a
    scratch connection, no key in buyer_sites): the same rows as the in-memory reader, the first
    line of each (buyer, site) across files and formats, and nothing left in the temp folder.
    Tiny blocks (many staged files) and tiny slices (many dedupe passes); the connection's
    memory limit and threads are as before afterwards."""
    monkeypatch.setattr(buyers, "CSV_BLOCK", 4096)
    monkeypatch.setattr(buyers, "FLUSH_LINES", 500)
    monkeypatch.setattr(buyers, "SLICE_BYTES", 64 << 10)  # many slices
    monkeypatch.setattr(buyers.tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    inbox = tmp_path / "buyers"
    inbox.mkdir()
    n = 60_000
    (inbox / "a.csv").write_text("buyer_id,site_id\n" + "".join(f"b{i % 7},S{i % 45_000}\n" for i in range(n))
                                 + "bad id!,S1\n")
    (inbox / "b.jsonl").write_text("".join(f'{{"buyer_id": "b{i % 7}", "site_id": "S{i}"}}\n'
                                           for i in range(44_990, 46_000, 3)))
    (inbox / "c.csv").write_bytes("buyer_id,site_id\nacmé,S2\n".encode("latin-1"))
    expected = buyers.read_folder(inbox)
    con = _warehouse(tmp_path / "wh.duckdb")
    con.execute("set memory_limit = '3GB'")
    con.execute("set threads = 2")
    settings_sql = "select current_setting('memory_limit'), current_setting('threads')"
    before = con.sql(settings_sql).fetchall()
    load = buyers.load(con, inbox)
    assert con.sql(settings_sql).fetchall() == before
    # the limit really is back (not only the setting shown): 5M distinct values need > 32 MiB
    assert con.sql("select count(distinct range::varchar || 'abcdefghijklmnop') from range(5000000)"
                   ).fetchall() == [(5_000_000,)]
    got = con.sql("select buyer_id, site_id, source_file, source_line from buyer_sites").pl()
    assert got.height == load.n_rows == expected.rows.height
    assert got.sort(["buyer_id", "site_id"]).equals(expected.rows.sort(["buyer_id", "site_id"]))
    assert got.filter(pl.col("source_file") == "b.jsonl").height > 0  # pairs only the JSON lines list
    assert load.files == expected.files == ["a.csv", "b.jsonl", "c.csv"]
    assert load.rejects.sort("file", "line").equals(expected.rejects.sort("file", "line"))
    assert load.buyers == expected.buyers
    assert list((tmp_path / "tmp").iterdir()) == []  # the scratch folder is gone


def test_buyer_sites_has_no_key_and_older_warehouses_lose_it(tmp_path):
    """The (buyer_id, site_id) key's in-memory index made a 100 MB list cost 1.6-1.8 GiB: the key is
    declared without an index (the loader keeps it), and a warehouse that still has the index is
    rebuilt without it at connect."""
    from radar_pipeline.metadata.warehouse import WAREHOUSE
    from radar_pipeline.platform.warehouse import connect

    table = WAREHOUSE["buyer_sites"]
    assert table.primary_key == ("buyer_id", "site_id") and not table.key_indexed
    assert "primary key" not in table.ddl()
    path = tmp_path / "old.duckdb"
    con = _warehouse(path)
    con.execute("drop table buyer_sites")
    con.execute("create table buyer_sites (buyer_id varchar not null, site_id varchar not null, "
                "source_file varchar, source_line bigint, primary key (buyer_id, site_id))")
    con.execute("insert into buyer_sites values ('acme', 'S1', 'a.csv', 2)")
    con.close()
    con = connect(path)
    try:
        keys = con.sql("select count(*) from duckdb_constraints() where table_name = 'buyer_sites' "
                       "and constraint_type = 'PRIMARY KEY'").fetchall()[0][0]
        assert keys == 0
        assert con.sql("select * from buyer_sites").fetchall() == [("acme", "S1", "a.csv", 2)]
    finally:
        con.close()


def test_buyer_load_counts_every_unknown_site_and_lists_the_first(tmp_path, monkeypatch):
    """A list sent before its sites: every unknown pair is counted, the first UNKNOWN_SHOWN (by
    buyer, site) are listed; a known site is neither."""
    inbox = tmp_path / "buyers"
    inbox.mkdir()
    (inbox / "a.csv").write_text("buyer_id,site_id\nzeta,S3\nacme,S2\nacme,KNOWN\nacme,S1\n")
    con = _warehouse(tmp_path / "wh.duckdb")
    con.execute("insert into sites (site_id, iso3, isic_code, isic_level, isic_class, source_file, source_line, "
                "content_hash, updated_at) values ('KNOWN', 'DNK', '1410', 'class', '1410', 's.jsonl', 1, 'x', now())")
    monkeypatch.setattr(buyers, "UNKNOWN_SHOWN", 2)
    load = buyers.load(con, inbox)
    assert load.n_unknown == 3 and load.unknown_sites == [("acme", "S1"), ("acme", "S2")]
    (inbox / "a.csv").write_text("buyer_id,site_id\nacme,KNOWN\n")
    load = buyers.load(con, inbox)
    assert load.n_unknown == 0 and load.unknown_sites == []


def test_a_failed_buyer_load_leaves_the_old_rows(tmp_path, monkeypatch):
    inbox = tmp_path / "buyers"
    inbox.mkdir()
    (inbox / "a.csv").write_text("buyer_id,site_id\nacme,S1\n")
    con = _warehouse(tmp_path / "wh.duckdb")
    buyers.load(con, inbox)
    before = con.sql("select * from side_input_loads").fetchall()
    (inbox / "a.csv").write_text("buyer_id,site_id\nacme,S2\nzeta,S3\n")
    real = con.execute

    class Boom(RuntimeError):
        pass

    def execute(sql, *args):  # the rejects are inserted after buyer_sites was replaced
        if sql.startswith("insert into buyer_site_rejects"):
            raise Boom("disk full")
        return real(sql, *args)
    wrapped = _Wrapped(con, execute)
    with pytest.raises(Boom):
        buyers.load(wrapped, inbox)
    assert con.sql("select buyer_id, site_id from buyer_sites").fetchall() == [("acme", "S1")]
    assert con.sql("select * from side_input_loads").fetchall() == before
    buyers._LOADED.clear()
    assert buyers.load(con, inbox).n_rows == 2  # and the next load reads the folder


class _Wrapped:
    """A connection whose `execute` is replaced (DuckDB's connection class cannot be patched)."""

    def __init__(self, con, execute):
        self._con, self.execute = con, execute

    def __getattr__(self, name):
        return getattr(self._con, name)


# ---------------------------------------------------------------- user indicator files

def test_user_file_not_utf8_names_file_and_reason(tmp_path):
    from radar_pipeline.sources.adapters import user

    path = tmp_path / "licensed.csv"
    path.write_bytes("iso3,indicator_id,year,value\nBGD,ilo_weekly_hours,2022,47.1\n".encode("utf-16"))
    with pytest.raises(SourceError, match=r"file licensed.csv: not UTF-8 text \(UTF-16"):
        user.parse([LandedFile("user", "2024", path)], [])
    path.write_text("")
    with pytest.raises(SourceError, match="file is empty"):
        user.parse([LandedFile("user", "2024", path)], [])


def test_user_file_read_in_blocks_keeps_line_numbers(tmp_path, monkeypatch):
    from radar_pipeline.sources.adapters import user

    monkeypatch.setattr(text_input.csv_blocks, "__defaults__", (64,))
    body = "".join(f"C{chr(65 + i // 26)}{chr(65 + i % 26)},ilo_weekly_hours,2022,4{i % 10}.5\n" for i in range(60))
    path = tmp_path / "licensed.csv"
    path.write_text("iso3,indicator_id,year,value\n" + body + "\nCAA,ilo_weekly_hours,2022,41\n")
    files = [LandedFile("user", "2024", path)]
    obs = user.parse(files, [])
    assert obs.height == 60 and obs["row_ref"].to_list() == [f"line {n}" for n in range(2, 62)]
    bad = user.quarantined(files).select("row_ref", "reason").rows()
    assert bad == [("line 63", "field 'iso3': CAA ilo_weekly_hours 2022 given twice (first on line 2)")]
    path.write_text("iso3,indicator_id,year,value\n" + body)
    obs = user.parse(files, [])
    assert obs.height == 60 and user.quarantined(files).is_empty()


def test_user_file_bad_rows_mid_file_are_quarantined_with_line_and_field(tmp_path, monkeypatch):
    """Read in tiny blocks: bad rows in later blocks (a quoted cell over two lines before them,
    too many fields, a bad value) are each quarantined with their editor line; every other row
    of every block is used."""
    from radar_pipeline.sources.adapters import user

    monkeypatch.setattr(text_input.csv_blocks, "__defaults__", (64,))
    good = [f"C{chr(65 + i // 26)}{chr(65 + i % 26)},ilo_weekly_hours,2022,4{i % 10}.5" for i in range(40)]
    lines = ["iso3,indicator_id,year,value", *good[:10], '"CZZ",ilo_weekly_hours,"20\n22",40',
             *good[10:20], "DAA,ilo_weekly_hours,2022,40,extra", *good[20:30], "DAB,ilo_weekly_hours,2022,forty",
             "DAC,ilo_weekly_hours,2022,41,", *good[30:]]
    path = tmp_path / "licensed.csv"
    path.write_text("\n".join(lines) + "\n")
    files = [LandedFile("user", "2024", path)]
    obs = user.parse(files, [])
    assert sorted(obs["code"].to_list()) == sorted([g[:3] for g in good] + ["DAC"])  # a trailing comma is fine
    bad = user.quarantined(files).select("row_ref", "code", "reason").rows()
    assert bad == [("line 12", "CZZ", "field 'year': year is not an integer: '20\n22'"),
                   ("line 24", "DAA", "field 'line': 5 fields, the header has 4 (extra cell 'extra')"),
                   ("line 35", "DAB", "field 'value': value is not a number: 'forty'")]


def test_user_file_parsed_again_only_when_the_content_changes(tmp_path, monkeypatch):
    from radar_pipeline.sources.adapters import user
    from radar_pipeline.sources.toolkit import tables

    path = tmp_path / "licensed.csv"
    path.write_text("iso3,indicator_id,year,value\nBGD,ilo_weekly_hours,2022,47.1\n")
    calls = []
    real = tables.__dict__.get("csv_blocks") or text_input.csv_blocks
    monkeypatch.setattr(text_input, "csv_blocks", lambda *a, **k: calls.append(1) or real(*a, **k))
    path.write_text("iso3,indicator_id,year,value\nBGD,ilo_weekly_hours,2022,47.1\nBGD,ilo_weekly_hours,2021,x\n")
    f = LandedFile("user", "2024", path)
    assert user.parse([f], [])["value"].to_list() == [47.1]
    assert user.parse([f], [])["value"].to_list() == [47.1] and calls == [1]
    assert user.quarantined([f])["row_ref"].to_list() == ["line 3"]  # still reported, from the cache
    stat = path.stat()
    path.write_text("iso3,indicator_id,year,value\nBGD,ilo_weekly_hours,2022,48.1\nBGD,ilo_weekly_hours,2021,9\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime: only the content differs
    assert user.parse([f], [])["value"].to_list() == [48.1, 9.0] and calls == [1, 1]
    assert user.quarantined([f]).is_empty()


def test_user_file_is_not_parsed_again_by_a_new_process(tmp_path, monkeypatch):
    """The parsed rows and the quarantined ones come back from the parse cache in a new process
    (here: the process's own memo cleared), equal to a fresh parse; another parser parses again."""
    from radar_pipeline.sources.adapters import user
    from radar_pipeline.sources.toolkit import tables

    path = tmp_path / "licensed.csv"
    path.write_text("iso3,indicator_id,year,value\nBGD,ilo_weekly_hours,2022,47.1\nBGD,ilo_weekly_hours,2021,x\n"
                    "NPL,ilo_weekly_hours,2022,44\n")
    f = LandedFile("user", "2024", path)
    fresh = user.parse([f], [])
    calls = []
    real = text_input.csv_blocks
    monkeypatch.setattr(text_input, "csv_blocks", lambda *a, **k: calls.append(1) or real(*a, **k))
    tables._PARSED.clear()
    assert user.parse([f], []).equals(fresh) and calls == []
    assert user.quarantined([f])["row_ref"].to_list() == ["line 3"]
    tables._PARSED.clear()
    from radar_pipeline.platform import parse_cache

    monkeypatch.setattr(parse_cache, "code_version", lambda *modules: "another release of the parser")
    assert user.parse([f], []).equals(fresh) and calls == [1]


# ---------------------------------------------------------------- RADAR_RULES_DIR

@pytest.fixture
def rules(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(settings.RULES_DIR, folder)
    monkeypatch.setenv("RADAR_RULES_DIR", str(folder))
    return folder


def test_packaged_rules_pass_the_check():
    rules_check.check(settings.RULES_DIR)


def test_controls_cut_in_half_fails_before_scoring_naming_file_and_line(rules):
    path = rules / "controls.csv"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    n = data[: len(data) // 2].count(b"\n") + 1
    with pytest.raises(rules_check.RuleTableError, match=rf"controls.csv line {n}: \d field\(s\), the header has 8"):
        rule_sql.install(duckdb.connect())  # every scoring, sector, country and publish connection


BROKEN = [
    ("controls.csv", lambda t: t.replace("control_id,", "control,", 1),
     r"controls.csv line 1: missing column\(s\) \['control_id'\]"),
    ("controls.csv", lambda t: t + t.splitlines()[1] + "\n",
     r"controls.csv line 46: duplicate key \{'control_id': 'ppe_enforced'\} \(first on line 2\)"),
    ("controls.csv", lambda t: t.replace("ppe_enforced,health_safety", "ppe_enforced,health_safty"),
     r"controls.csv line 2: topic 'health_safty' is not a topic\|pillar of topics.csv"),
    ("saq_factors.csv", lambda t: t.replace(",none,<50 workers", ",nope,<50 workers"),
     r"saq_factors.csv line 2: level 'nope' is not a level of saq_levels.csv"),
    ("sector_weights.csv", lambda t: t.replace("A,section,wages", "A,section,wagez", 1),
     r"sector_weights.csv line 2: topic 'wagez' is not a topic of topics.csv"),
    ("indicators.csv", lambda t: t.replace("higher_is_riskier", "up", 1),
     r"indicators.csv line 2: direction 'up' is not one of"),
    ("topics.csv", lambda t: t.encode("utf-16"), r"topics.csv: not UTF-8 text \(UTF-16"),
    ("gap_filling.csv", lambda t: t.replace("min_donors,3", "min_donors,300"),
     r"gap_filling.csv line 2: min_donors = '300'"),
    ("score_categories.csv", lambda t: t.replace("rationale\nLow,", 'rationale\n"Low,'),
     r"score_categories.csv line \d+: .*truncated"),
]


@pytest.mark.parametrize("name, edit, message", BROKEN)
def test_broken_rule_tables_fail_with_file_and_line(rules, name, edit, message):
    path = rules / name
    new = edit(path.read_text(encoding="utf-8"))
    path.write_bytes(new if isinstance(new, bytes) else new.encode("utf-8"))
    with pytest.raises(rules_check.RuleTableError, match=message):
        rules_check.check(rules)


def test_missing_rule_table_is_named(rules):
    (rules / "saq_levels.csv").unlink()
    with pytest.raises(rules_check.RuleTableError, match=r"saq_levels.csv: rule table missing"):
        rules_check.check(rules)


def test_intake_refuses_a_catalogue_missing_stored_control_ids(rules, tmp_path):
    """controls.csv cut at a line end is a valid shorter table; the stored sites tell, and the
    intake (store.reference, before any site is judged) stops naming the file."""
    from radar_pipeline.platform.warehouse import ensure_schema
    from radar_pipeline.sites import store

    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    ensure_schema(con)
    con.execute("create or replace view countries as select 'BGD' as iso3")  # a refreshed warehouse's view
    con.execute("insert into isic values ('1410', 'class', 'Apparel', 'C', '14', '141', false)")
    lines = (rules / "controls.csv").read_text(encoding="utf-8").splitlines()
    dropped = lines[23].split(",")[0]
    con.execute("insert into site_controls (site_id, control_id) values ('S1', $c)", {"c": dropped})
    assert dropped in store.reference(con)[2]  # the whole table: fine
    (rules / "controls.csv").write_text("\n".join(lines[:23]) + "\n", encoding="utf-8")
    rules_check.check(rules)  # a valid (shorter) table on its own
    with pytest.raises(rules_check.RuleTableError, match=rf"controls.csv: stored sites use control id\(s\) the table "
                                                         rf"does not list: '{dropped}' \(1 site\(s\)\)"):
        store.reference(con)
    (rules / "controls.csv").write_text("\n".join(lines[:23])[:-5], encoding="utf-8")  # cut mid-line
    with pytest.raises(rules_check.RuleTableError, match=r"controls.csv line 23: .* field"):
        store.reference(con)


# ---------------------------------------------------------------- RADAR_MEMORY_LIMIT

@pytest.mark.parametrize("value, expected", [("1GB", 10**9), ("512MiB", 512 << 20), (" 2.5 gb ", 2_500_000_000),
                                             ("1000000 bytes", 1_000_000)])
def test_memory_limit_is_read_once_as_duckdb_reads_it(monkeypatch, value, expected):
    monkeypatch.setenv("RADAR_MEMORY_LIMIT", value)
    assert settings.memory_limit_bytes() == expected
    assert buyers._load_limit() == min(buyers.LOAD_MEMORY, expected)
    assert duckdb.connect(config={"memory_limit": settings.memory_limit()}).sql(
        "select current_setting('memory_limit')").fetchone()[0]


@pytest.mark.parametrize("value", ["abc", "1 GB; drop table x", "-1GB", "0GB", "GB", "1XB", "1000000"])
def test_a_memory_limit_duckdb_would_not_take_is_refused_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("RADAR_MEMORY_LIMIT", value)
    with pytest.raises(ValueError, match=r"^RADAR_MEMORY_LIMIT .* is not a size such as 1GB"):
        settings.memory_limit()


# --- publisher files parsed once across processes (registry.parse_vintage) -------------------------

def _cpi_vintage(tmp_path):
    import shutil

    from radar_pipeline.platform import settings
    from radar_pipeline.sources.toolkit import specs_for
    from radar_pipeline.sources.toolkit.fetch import mirror_files

    mirror = tmp_path / "mirror"
    shutil.copytree(settings.SAMPLE_MIRROR_DIR / "ti_cpi", mirror / "ti_cpi")
    files = mirror_files(mirror, "ti_cpi", ("*.xlsx",))["2023"]
    return files, specs_for("ti_cpi", "2023")


def _counting_parse(monkeypatch):
    from radar_pipeline.sources.adapters import ti_cpi

    calls: list[str] = []
    real = ti_cpi.parse

    def parse(files, specs, **kw):
        calls.append(files[0].name)
        return real(files, specs, **kw)
    monkeypatch.setattr(ti_cpi, "parse", parse)
    return calls


def test_publisher_vintage_is_parsed_again_only_when_it_changes(tmp_path, monkeypatch):
    """The next process (here: the next call, which reads the cache from disk as a new process
    would) gets the same rows without parsing; an edited file, other specs or a parse for another
    purpose parse again."""
    import openpyxl

    from radar_pipeline.sources import registry

    monkeypatch.setenv("RADAR_CACHE", str(tmp_path / "cache"))
    files, specs = _cpi_vintage(tmp_path)
    calls = _counting_parse(monkeypatch)
    first = registry.parse_vintage("ti_cpi", files, specs)
    assert calls == [files[0].name] and first.height > 0
    again = registry.parse_vintage("ti_cpi", files, specs)
    assert calls == [files[0].name]
    assert again.equals(first)
    import dataclasses

    registry.parse_vintage("ti_cpi", files, [dataclasses.replace(specs[0], indicator_id="other")])  # other specs
    assert len(calls) == 2
    wb = openpyxl.load_workbook(files[0].path)  # an edited file: parsed again, its new values kept
    for ws in wb:
        header = [c.value for c in ws[4]]
        for row in ws.iter_rows(min_row=5):
            for cell, name in zip(row, header):
                if isinstance(name, str) and name.startswith("CPI score") and cell.value is not None:
                    cell.value = 1
    wb.save(files[0].path)
    edited = registry.parse_vintage("ti_cpi", files, specs)
    assert len(calls) == 3 and not edited.equals(first) and 1.0 in set(edited["value"].to_list())


def test_a_publisher_parse_that_fails_is_not_cached(tmp_path, monkeypatch):
    from radar_pipeline.sources import registry
    from radar_pipeline.sources.toolkit import SourceError

    monkeypatch.setenv("RADAR_CACHE", str(tmp_path / "cache"))
    files, specs = _cpi_vintage(tmp_path)
    files[0].path.write_bytes(b"<html>not a workbook</html>")
    calls = _counting_parse(monkeypatch)
    for _ in range(2):
        with pytest.raises(SourceError):
            registry.parse_vintage("ti_cpi", files, specs)
    assert len(calls) == 2
