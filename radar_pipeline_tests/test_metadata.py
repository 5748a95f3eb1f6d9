"""One declaration per table (radar_pipeline/metadata): the DDL, the pandera schemas, the data
dictionary and the Dagster column metadata all come from it."""
from __future__ import annotations

import dataclasses

import dagster as dg
import duckdb
import polars as pl
import pytest

from radar_pipeline.metadata import PUBLISHED, WAREHOUSE, Field, Table, schemas, warehouse_ddl
from radar_pipeline.metadata.fields import F
from radar_pipeline.platform.warehouse import declared_table_schema, ensure_schema, table_schema_metadata
from radar_pipeline.publish import build
from radar_pipeline.publish import schemas as published_schemas
from radar_pipeline.rules.methodology import TOPICS


def catalog(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str, bool]]:
    return con.sql("select column_name, data_type, is_nullable from duckdb_columns() where table_name = $t "
                   "order by column_index", params={"t": table}).fetchall()


def primary_key(con: duckdb.DuckDBPyConnection, table: str) -> tuple[str, ...]:
    rows = con.sql("select constraint_column_names from duckdb_constraints() where table_name = $t "
                   "and constraint_type = 'PRIMARY KEY'", params={"t": table}).fetchall()
    return tuple(rows[0][0]) if rows else ()


def test_the_warehouse_is_created_as_declared():
    con = duckdb.connect()
    try:
        ensure_schema(con)
        for name, table in WAREHOUSE.items():
            if table.view_sql is not None:
                cols = con.sql(f"select * from {name} limit 0").columns
                assert cols == table.column_names, name
                continue
            expected = [(f.name, f.duckdb_type, f.nullable and f.name not in table.primary_key)
                        for f in table.fields()]
            assert catalog(con, name) == expected, name
            assert primary_key(con, name) == (table.primary_key if table.key_indexed else ()), name
    finally:
        con.close()


def test_a_field_added_to_a_warehouse_declaration_reaches_ddl_pandera_and_dagster():
    new = Field("water_stress", "double", "Share of renewable water withdrawn", range=(0.0, 1.0))
    base = WAREHOUSE["country_topic_risk"]
    table = dataclasses.replace(base, columns=[*base.fields(), new])
    con = duckdb.connect()
    try:
        con.execute(table.ddl())
        assert catalog(con, "country_topic_risk")[-1] == ("water_stress", "DOUBLE", True)
        assert primary_key(con, "country_topic_risk") == ("edition", "iso3", "topic")
    finally:
        con.close()
    schema = table.pandera(exclude=schemas.STAMPED)
    assert list(schema.columns)[-1] == "water_stress"
    column = schema.columns["water_stress"]
    assert (column.nullable, column.description) == (True, "Share of renewable water withdrawn")
    dagster = table.dagster_schema()
    col = dagster.columns[-1]
    assert (col.name, col.type, col.description) == ("water_stress", "DOUBLE", "Share of renewable water withdrawn")
    assert col.constraints.other == ["between 0.0 and 1.0"]
    # its constraint is enforced by the generated pandera schema, naming the column
    frame = pl.DataFrame({"edition": [2024], "iso3": ["FRA"], "topic": [TOPICS[0]], "score": [2.0],
                          "n_indicators": [1], "n_imputed": [0], "confidence": [1.0], "missing_topics": [""],
                          "water_stress": [1.5]},
                         schema_overrides={"edition": pl.Int32, "n_indicators": pl.Int32, "n_imputed": pl.Int32})
    problems = schemas.validate(schema, frame)
    assert len(problems) == 1 and "water_stress" in problems[0] and "in_range" in problems[0]
    assert schemas.validate(schema, frame.with_columns(water_stress=pl.lit(0.5))) == []


def test_a_field_added_to_a_published_declaration_reaches_pandera_and_the_dictionary():
    base = PUBLISHED["country_risk"]
    new = Field("water_stress", "double", "Share of renewable water withdrawn")
    table = dataclasses.replace(base, columns=[*base.fields(), new])
    assert list(table.pandera(strict=True).columns)[-1] == "water_stress"
    built = [(f.name, i + 1, f.duckdb_type) for i, f in enumerate(table.fields())]
    rows, problems = table.dictionary_rows(built)
    assert problems == []
    assert rows[-1] == {"table_name": "country_risk", "table_description": base.description,
                        "ordinal_position": len(built), "column_name": "water_stress", "data_type": "DOUBLE",
                        "nullable": True, "description": "Share of renewable water withdrawn"}
    # the published table as declared today has no such column: the dictionary refuses it
    _, problems = base.dictionary_rows(built)
    assert problems and "water_stress" in problems[0] and "radar_pipeline/metadata" in problems[0]


def test_the_published_schemas_and_dictionary_come_from_the_declarations():
    assert list(published_schemas.SCHEMAS) == list(PUBLISHED)
    dictionary = build.empty_dictionary()
    for name, table in PUBLISHED.items():
        schema = published_schemas.SCHEMAS[name]
        assert schema.description == table.description
        assert list(schema.columns) == table.column_names
        rows = dictionary.filter(pl.col("table_name") == name).sort("ordinal_position")
        assert rows["column_name"].to_list() == table.column_names, name
        assert rows["description"].to_list() == [f.description for f in table.fields()], name
        assert rows["nullable"].to_list() == [f.nullable for f in table.fields()], name
        # the declared type is the type the SQL builds
        assert rows["data_type"].to_list() == [f.duckdb_type for f in table.fields()], name
        assert all(f.description for f in table.fields()), f"{name}: a published column needs a description"


def test_shared_fields_keep_one_meaning_across_warehouse_and_published_tables():
    # the warehouse's site_scores and the published site tables describe a column the same way
    published = {f.name: f for f in PUBLISHED["site_scores_history"].fields()}
    for f in WAREHOUSE["site_scores"].fields():
        if f.name != "methodology_version":
            assert published[f.name] == f, f.name
    assert F["final_score"].range == (0.0, 10.0)


def test_dagster_column_metadata_is_the_declaration():
    schema = declared_table_schema("site_scores")
    assert isinstance(schema, dg.TableSchema)
    assert [(c.name, c.type) for c in schema.columns] == [
        (f.name, f.duckdb_type) for f in WAREHOUSE["site_scores"].fields()]
    final = next(c for c in schema.columns if c.name == "final_score")
    assert final.description == F["final_score"].description
    # the key holds by construction; DuckDB keeps no index for it (rescoring deletes and re-inserts)
    assert schema.constraints.other == ["primary key (edition, site_id): unique by construction, not indexed"]
    con = duckdb.connect()
    try:
        ensure_schema(con)
        assert table_schema_metadata(con, "indicator_scores") == WAREHOUSE["indicator_scores"].dagster_schema()
        # a table not declared in radar_pipeline/metadata is described from the database
        undeclared = table_schema_metadata(con, "site_saq")
        assert [c.name for c in undeclared.columns] == [
            r[0] for r in con.sql("select column_name from information_schema.columns "
                                  "where table_name = 'site_saq' order by ordinal_position").fetchall()]
    finally:
        con.close()


def test_a_table_whose_columns_come_from_a_function():
    answers = [("water_source", "varchar"), ("workers", "integer")]  # e.g. read from a rule CSV
    table = Table("answers", "One row per site", lambda: [F["site_id"], *(Field(n, t) for n, t in answers)],
                  primary_key=("site_id",))
    con = duckdb.connect()
    try:
        con.execute(table.ddl())
        assert catalog(con, "answers") == [("site_id", "VARCHAR", False), ("water_source", "VARCHAR", True),
                                           ("workers", "INTEGER", True)]
        answers.append(("audited", "boolean"))  # the rule file gained a field
        con.execute(table.ddl(if_not_exists=False, qualified="answers_v2"))
        assert catalog(con, "answers_v2")[-1] == ("audited", "BOOLEAN", True)
    finally:
        con.close()
    assert list(table.pandera().columns) == ["site_id", "water_source", "workers", "audited"]


def test_lake_ddl_has_no_primary_keys_but_keeps_their_columns_not_null():
    con = duckdb.connect()
    try:
        con.execute(warehouse_ddl(keys=False))
        assert primary_key(con, "site_scores") == ()
        assert catalog(con, "site_scores")[:2] == [("edition", "INTEGER", False), ("site_id", "VARCHAR", False)]
    finally:
        con.close()


def test_older_warehouses_get_the_columns_added_later():
    con = duckdb.connect()
    try:
        con.execute("create table site_rejects (file varchar not null, file_sha256 varchar not null, line bigint, "
                    "site_id varchar, field varchar, reason varchar not null, received_at timestamp not null)")
        con.execute("insert into site_rejects values ('a.jsonl', 'x', 1, 'S1', 'iso3', 'bad', now())")
        ensure_schema(con)
        assert catalog(con, "site_rejects")[-2:] == [("resolved_at", "TIMESTAMP", True),
                                                     ("methodology_version", "VARCHAR", True)]
        assert con.sql("select count(*) from site_rejects where resolved_at is null").fetchall() == [(1,)]
    finally:
        con.close()


def test_older_warehouses_lose_a_retired_primary_key_and_keep_their_rows(tmp_path):
    """site_remediation had a primary key index until it made rescoring slow: a warehouse built
    before is rebuilt without it at connect, with every row and the declared columns (the key's
    columns stay NOT NULL)."""
    from radar_pipeline.platform.warehouse import connect

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    ensure_schema(con)
    con.execute("drop table site_remediation")
    con.execute(WAREHOUSE["site_remediation"].ddl(if_not_exists=False)
                .replace("\n);", ",\n    primary key (edition, site_id, step)\n);", 1))
    assert primary_key(con, "site_remediation") == ("edition", "site_id", "step")
    con.execute("insert into site_remediation (edition, site_id, step, action, detail) values "
                "(2024, 'S1', 1, 'control', 'x'), (2024, 'S1', 2, 'finding', 'y')")
    con.close()
    con = connect(path)
    try:
        assert primary_key(con, "site_remediation") == ()
        table = WAREHOUSE["site_remediation"]
        assert catalog(con, "site_remediation") == [
            (f.name, f.duckdb_type, f.nullable and f.name not in table.primary_key) for f in table.fields()]
        assert ("step", "INTEGER", False) in catalog(con, "site_remediation")
        assert con.sql("select site_id, step, action from site_remediation order by step").fetchall() == [
            ("S1", 1, "control"), ("S1", 2, "finding")]
        # a key still declared is left alone
        assert primary_key(con, "sites") == ("site_id",)
    finally:
        con.close()


def test_declarations_are_consistent():
    for tables in (WAREHOUSE, PUBLISHED):
        for table in tables.values():
            table.fields()  # raises on a duplicated column or a key naming no column
            assert table.description, table.name
            # the Dagster UI and the data dictionary show every column's description
            assert [f.name for f in table.fields() if not f.description] == [], table.name
    with pytest.raises(ValueError, match="declared twice"):
        Table("t", "d", [F["iso3"], F["iso3"]]).fields()
    with pytest.raises(ValueError, match="unknown columns"):
        Table("t", "d", [F["iso3"]], primary_key=("edition",)).fields()
    with pytest.raises(ValueError, match="type 'text'"):
        Field("x", "text")
