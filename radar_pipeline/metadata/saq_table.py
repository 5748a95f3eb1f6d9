"""The table `site_saq`: a site's SAQ answers as ONE row per site, one typed column per question
of rules/saq_fields.csv (integer -> BIGINT, number -> DOUBLE, boolean -> BOOLEAN, enum / text ->
VARCHAR). A site has a row only when it answered at least one question (§6: "no self-assessment"
= no row).

The DDL is generated here from the CSV, so a methodology owner who adds a question row gets a
column: `ensure` (called by radar_pipeline/platform/warehouse.py whenever a warehouse is opened for
writing) creates the table, adds the columns of questions added since, and converts the long
table of earlier versions (site_id, field, value_num, value_bool, value_text: ~27 rows per site)
in one transaction. No answer is lost: a field the long table holds that the CSV no longer
lists keeps a column of its own.

Light on purpose (csv, no polars at import): every CLI start opens a warehouse.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

from radar_pipeline.platform.settings import rules_dir

TABLE = "site_saq"
SQL_TYPES = {"integer": "bigint", "number": "double", "boolean": "boolean", "enum": "varchar", "text": "varchar"}
# the long layout's columns: a question may not be called so (the migration tells the layouts apart)
LONG_COLUMNS = ("field", "value_num", "value_bool", "value_text")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def read_fields(path: Path | None = None) -> dict[str, str]:
    """field -> saq_fields.csv type, in file order; checked so that every field is a column name."""
    path = Path(path or rules_dir() / "saq_fields.csv")
    out: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            field, ftype = (row.get("field") or "").strip(), (row.get("type") or "").strip()
            where = f"{path.name} line {line}"
            if not _NAME.match(field) or field == "site_id" or field in LONG_COLUMNS:
                raise ValueError(f"{where}: field {field!r} cannot be a column of {TABLE} (lower-case letters, "
                                 f"digits and _, starting with a letter; not site_id or {', '.join(LONG_COLUMNS)})")
            if ftype not in SQL_TYPES:
                raise ValueError(f"{where}: type {ftype!r} of {field} is not one of {sorted(SQL_TYPES)}")
            if field in out:
                raise ValueError(f"{where}: field {field} listed twice")
            out[field] = ftype
    return out


def columns(path: Path | None = None) -> dict[str, str]:
    """field -> DuckDB type of its column, in questionnaire order."""
    return {field: SQL_TYPES[ftype] for field, ftype in read_fields(path).items()}


def ddl(path: Path | None = None, name: str = TABLE) -> str:
    cols = "".join(f",\n    {field} {sql_type}" for field, sql_type in columns(path).items())
    # no primary key: a key index costs ~1 s per million rows inserted, and the intake already
    # guarantees one row per site (a repeated site_id is rejected)
    return f"create table if not exists {name} (\n    site_id varchar not null{cols}\n);\n"


def table_columns(con, name: str = TABLE) -> dict[str, str]:
    """column -> DuckDB type (as information_schema reports it, e.g. BIGINT) of `name` in the
    connection's current catalog and schema; empty when there is no such table."""
    # the name as a literal, not a bound parameter: binding a Python value makes duckdb 1.5 import
    # pandas, numpy and pyarrow (~85 MiB and ~0.5 s), and this runs whenever a process opens the warehouse
    literal = "'" + name.replace("'", "''") + "'"
    return dict(con.execute(
        "select column_name, data_type from information_schema.columns where table_name = " + literal +
        " and table_catalog = current_database() and table_schema = current_schema() "
        "order by ordinal_position").fetchall())


def ensure(con, path: Path | None = None) -> None:
    """Create site_saq if missing, convert a long one, add the columns of new questions."""
    wanted = columns(path)
    have = table_columns(con)
    if have and set(LONG_COLUMNS) <= set(have):
        _convert_long(con, wanted)
        have = table_columns(con)
    if not have:
        con.execute(ddl(path))
        return
    for field, sql_type in wanted.items():
        if field not in have:
            con.execute(f"alter table {TABLE} add column {field} {sql_type}")


def _convert_long(con, wanted: dict[str, str]) -> None:
    """The long table of earlier versions -> one row per site. Every field in it gets a column:
    the CSV's type, or, for a field the CSV no longer lists (or an integer field holding a value
    a BIGINT cannot), the type of the values stored (double / boolean / varchar)."""
    stored = con.sql(f"""
        select field, count(value_num) > 0, count(value_bool) > 0,
               count(*) filter (where value_num <> floor(value_num) or abs(value_num) >= 9.2e18) > 0
        from {TABLE} group by field order by field""").fetchall()
    cols = dict(wanted)
    for field, has_num, has_bool, not_whole in stored:
        if not _NAME.match(field) or field in ("site_id", *LONG_COLUMNS):
            raise RuntimeError(f"{TABLE}: stored answers to a field named {field!r} cannot become a column; "
                               "rename that field in the warehouse before opening it with this version")
        if field not in cols:
            cols[field] = "double" if has_num else "boolean" if has_bool else "varchar"
        elif cols[field] == "bigint" and not_whole:
            cols[field] = "double"
    value = {"bigint": "value_num", "double": "value_num", "boolean": "value_bool", "varchar": "value_text"}
    picks = "".join(f",\n            max({value[t]}) filter (where field = '{f}')::{t} as {f}"
                    for f, t in cols.items())
    new = f"{TABLE}__wide"
    body = "".join(f",\n    {f} {t}" for f, t in cols.items())
    con.execute("begin transaction")
    try:
        con.execute(f"drop table if exists {new}")
        con.execute(f"create table {new} (\n    site_id varchar not null{body}\n)")
        # every site with a stored row keeps one (even a row without a value: the engine's
        # "has a questionnaire" is "has a row", before and after)
        con.execute(f"""insert into {new} by name
            select site_id{picks}
            from {TABLE}
            group by site_id""")
        con.execute(f"drop table {TABLE}")
        con.execute(f"alter table {new} rename to {TABLE}")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
