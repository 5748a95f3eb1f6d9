"""site_saq as one row per site (issue 10 item 7): the DDL from rules/saq_fields.csv, the
conversion of the long table of earlier versions on first open, a new question row becoming
a column, and the engine refusing a long table it cannot convert (read-only)."""
from __future__ import annotations

import shutil

import duckdb
import polars as pl
import pytest

from radar_pipeline.metadata import saq_table
from radar_pipeline.platform import settings
from radar_pipeline.platform.warehouse import connect
from radar_pipeline.sites import scoring
from radar_pipeline.sites.intake import read_sites_jsonl

LONG_DDL = """create table site_saq (site_id varchar not null, field varchar not null, value_num double,
                                     value_bool boolean, value_text varchar)"""
LONG_ROWS = [
    ("A", "workers_total", 1250.0, None, None),
    ("A", "labour_intensive", None, True, None),
    ("A", "worker_representation", None, None, "committee"),
    ("A", "migrant_pct", 12.5, None, None),
    ("A", "dropped_question", 3.25, None, None),   # no longer in saq_fields.csv: kept, not lost
    ("B", "piece_rate", None, False, None),
    ("C", "workers_total", None, None, None),      # a stored row without a value: C still "has a SAQ"
]


def _old_warehouse(path):
    con = duckdb.connect(str(path))
    con.execute(LONG_DDL)
    con.executemany("insert into site_saq values (?, ?, ?, ?, ?)", LONG_ROWS)
    con.close()


def test_ddl_has_one_typed_column_per_question():
    cols = saq_table.columns()
    fields = pl.read_csv(settings.rules_dir() / "saq_fields.csv")
    assert list(cols) == fields["field"].to_list()
    con = duckdb.connect()
    con.execute(saq_table.ddl())
    types = saq_table.table_columns(con)
    assert list(types) == ["site_id", *fields["field"].to_list()]
    expected = {"integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN", "enum": "VARCHAR"}
    for field, ftype in zip(fields["field"], fields["type"]):
        assert types[field] == expected[ftype], field


def test_long_table_is_converted_on_first_open_without_losing_an_answer(tmp_path):
    path = tmp_path / "old.duckdb"
    _old_warehouse(path)
    con = connect(path)
    try:
        types = saq_table.table_columns(con)
        assert "field" not in types and "value_num" not in types
        assert types["workers_total"] == "BIGINT" and types["dropped_question"] == "DOUBLE"
        rows = {r["site_id"]: r for r in con.sql("select * from site_saq").pl().iter_rows(named=True)}
    finally:
        con.close()
    assert set(rows) == {"A", "B", "C"}
    a = rows["A"]
    assert (a["workers_total"], a["labour_intensive"], a["worker_representation"], a["migrant_pct"],
            a["dropped_question"]) == (1250, True, "committee", 12.5, 3.25)
    assert rows["B"]["piece_rate"] is False and rows["B"]["workers_total"] is None
    assert all(v is None for k, v in rows["C"].items() if k != "site_id")
    # a second open finds the new layout and changes nothing
    con = connect(path)
    try:
        assert con.sql("select count(*) from site_saq").fetchall()[0][0] == 3
    finally:
        con.close()


def test_a_long_table_on_a_read_only_connection_names_the_way_out(tmp_path):
    path = tmp_path / "old.duckdb"
    _old_warehouse(path)
    con = duckdb.connect(str(path), read_only=True)
    scoring.load_rules(con, temp=True)
    con.execute("create temp table sites (site_id varchar, iso3 varchar, isic_code varchar, isic_level varchar, "
                "isic_class varchar)")
    with pytest.raises(RuntimeError, match=r"long layout.*radar sites ingest"):
        scoring.score_sites(con, 2024, None, "t")


def test_a_new_question_row_becomes_a_column(tmp_path, monkeypatch):
    rules = tmp_path / "rules"
    shutil.copytree(settings.RULES_DIR, rules)
    with open(rules / "saq_fields.csv", "a", encoding="utf-8") as fh:
        fh.write("night_shifts_pct,number,0,100,,Share of workers on night shifts (%)\n")
    path = tmp_path / "w.duckdb"
    connect(path).close()  # created with the packaged questions
    monkeypatch.setenv("RADAR_RULES_DIR", str(rules))
    con = connect(path)
    try:
        assert saq_table.table_columns(con)["night_shifts_pct"] == "DOUBLE"
    finally:
        con.close()
    line = ('{"site_id": "N-1", "country": "BGD", "isic": "1410", '
            '"saq": {"night_shifts_pct": 40, "workers_total": 12}}')
    (tmp_path / "s.jsonl").write_text(line + "\n")
    isic = pl.DataFrame({"code": ["1410"], "level": ["class"], "section": ["C"], "division": ["14"],
                         "grp": ["141"], "is_primary_producer": [False]})
    r = read_sites_jsonl(tmp_path / "s.jsonl", countries={"BGD"}, isic=isic, controls=set())
    assert r.rejects.height == 0
    assert r.saq.row(0, named=True)["night_shifts_pct"] == 40.0 and r.saq.schema["workers_total"] == pl.Int64


@pytest.mark.parametrize("row,message", [
    ("site_id,boolean,,,,clash", "cannot be a column"),
    ("Bad Name,boolean,,,,spaces", "cannot be a column"),
    ("value_num,number,,,,long layout", "cannot be a column"),
    ("colour,color,,,,typo in the type", "type 'color'"),
    ("piece_rate,boolean,,,,twice", "listed twice"),
])
def test_a_question_that_cannot_be_a_column_is_refused_with_its_line(tmp_path, row, message):
    path = tmp_path / "saq_fields.csv"
    shutil.copy(settings.RULES_DIR / "saq_fields.csv", path)
    n = len(path.read_text().splitlines())
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(row + "\n")
    with pytest.raises(ValueError, match=rf"saq_fields.csv line {n + 1}: .*{message}"):
        saq_table.columns(path)


def test_an_integer_answer_too_large_for_bigint_is_rejected_not_stored(tmp_path):
    isic = pl.DataFrame({"code": ["1410"], "level": ["class"], "section": ["C"], "division": ["14"],
                         "grp": ["141"], "is_primary_producer": [False]})
    lines = ['{"site_id": "OK-1", "country": "BGD", "isic": "1410", "saq": {"workers_total": 1e15}}',
             '{"site_id": "BIG-1", "country": "BGD", "isic": "1410", "saq": {"workers_total": 1e300}}']
    (tmp_path / "s.jsonl").write_text("\n".join(lines) + "\n")
    r = read_sites_jsonl(tmp_path / "s.jsonl", countries={"BGD"}, isic=isic, controls=set())
    assert r.saq.to_dicts() == [{**dict.fromkeys(r.saq.columns), "site_id": "OK-1", "workers_total": 10**15}]
    rej = r.rejects.row(0, named=True)
    assert (rej["line"], rej["site_id"], rej["field"]) == (2, "BIG-1", "saq.workers_total")
    assert "too large for a whole number" in rej["reason"]


def test_fast_and_exact_path_store_the_same_typed_row(tmp_path):
    """A line with a JSON escape goes through the exact (row-by-row) reader: its wide row must
    equal the fast path's for the same answers, column for column and type for type."""
    isic = pl.DataFrame({"code": ["1410"], "level": ["class"], "section": ["C"], "division": ["14"],
                         "grp": ["141"], "is_primary_producer": [False]})
    saq = ('"saq": {"workers_total": 1250.0, "labour_intensive": true, "migrant_pct": 12.5, '
           '"worker_representation": "none", "piece_rate": false, "women_workers_pct": 45}')
    lines = ['{"site_id": "FAST-1", "country": "BGD", "isic": "1410", ' + saq + '}',
             '{"site_id": "EXACT-1", "site_name": "Caf\\u00e9", "country": "BGD", "isic": "1410", ' + saq + '}',
             '{"site_id": "NONE-1", "country": "BGD", "isic": "1410", "saq": {"piece_rate": null}}']
    (tmp_path / "s.jsonl").write_text("\n".join(lines) + "\n")
    r = read_sites_jsonl(tmp_path / "s.jsonl", countries={"BGD"}, isic=isic, controls=set())
    assert r.rejects.height == 0 and r.sites.height == 3
    assert r.saq["site_id"].to_list() == ["FAST-1", "EXACT-1"]  # only null answers: no row
    fast, exact = (row for row in r.saq.drop("site_id").iter_rows(named=True))
    assert fast == exact and fast["workers_total"] == 1250 and fast["worker_representation"] == "none"
