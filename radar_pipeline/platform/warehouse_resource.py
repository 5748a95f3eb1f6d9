"""The warehouse as a Dagster resource (`DuckDBWarehouse`) and the warehouse tables' Dagster column
schemas. Apart from warehouse.py (connect and the write patterns) because it imports dagster
(~0.7 s): `radar score` and the scoring engine use the warehouse without Dagster. warehouse.py
re-exports these names on first use."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field, PrivateAttr

from radar_pipeline.metadata import WAREHOUSE
from radar_pipeline.platform import collector, lake_commits, settings
from radar_pipeline.platform.warehouse import (
    closed_with_schema,
    connect,
    ensure_schema,
    hold,
    sql_literal,
    unhold,
    used,
)


class DuckDBWarehouse(DuckDBResource):
    """The pipeline's warehouse (RADAR_WAREHOUSE): the embedded DuckDB file (default
    data/radar.duckdb) or a DuckLake target `ducklake:...` (radar_pipeline/platform/lake.py).

    A `dagster_duckdb.DuckDBResource` (`database`, `connection_config`, `get_connection()`),
    extended with `read_only` and `memory_limit`. `get_connection` is the project's one
    connection factory (`warehouse.connect`) rather than the base class's `duckdb.connect` with
    backoff, which cannot serve here (measured in bench/bench_duckdb_resource.py, figures in
    bench/README.md): it cannot open a DuckLake target, always opens read-write (a reader holds
    the file's write lock), gives up after ~102 s of retries while a refresh holds the lock (a
    refresh holds it for minutes), and leaves the connection open when the body raises.
    """

    database: str = Field(default=str(settings.warehouse_path()),
                          description="The warehouse: a DuckDB file (RADAR_WAREHOUSE, default "
                                      "data/radar.duckdb) or a DuckLake target 'ducklake:<catalog>'.")
    read_only: bool = Field(default=False, description="Open every connection read-only (a reporting "
                            "code location: it never takes the file's write lock).")
    memory_limit: str = Field(default="", description="DuckDB memory_limit for every connection, e.g. "
                              "'4GB' ('' = DuckDB's default, 80% of RAM).")
    _held: bool = PrivateAttr(default=False)
    _collector: tuple | None = PrivateAttr(default=None)

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False  # the connection logic is this project's, not dagster-duckdb's

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # on a lake every commit of this run names the run, so its closing snapshot tag
        # (lake_commits.tag_run: CLI, or the run-status sensor for UI/schedule/sensor runs) finds it
        lake_commits.set_run(context.run.run_id if context.run is not None else None)
        # a run's connections share one open database, released whenever the run leaves the file
        # idle (warehouse.hold: ~2.5 s of a refresh was opening and checkpointing the file);
        # not for a sensor's evaluation (no run) or a read-only code location
        self._held = context.run is not None and not self.read_only
        if self._held:
            hold(self.database)
        if context.run is not None:
            # a run's events and frames kept Python's collector walking the heap (collector.py)
            self._collector = collector.raise_threshold()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        lake_commits.set_run(None)
        if self._collector is not None:
            collector.restore(self._collector)
            self._collector = None
        if self._held:
            self._held = False
            unhold(self.database)

    @property
    def path(self) -> str:
        """The warehouse target (the name the pipeline's code uses for `database`)."""
        return self.database

    def duckdb_settings(self) -> dict[str, object]:
        """DuckDB settings applied to every connection: `connection_config` plus `memory_limit`."""
        return {**self.connection_config, **({"memory_limit": self.memory_limit} if self.memory_limit else {})}

    @contextmanager
    def get_connection(self, read_only: bool = False,
                       wait_seconds: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        writing = not (self.read_only or read_only)
        con = connect(self.database, read_only=not writing, wait_seconds=wait_seconds)
        ok = False
        try:
            # SET, not duckdb.connect(config=): the same for a file and a lake session
            for key, value in self.duckdb_settings().items():
                con.execute(f"set {key} = {sql_literal(value)}")
            yield con
            ok = True
        finally:
            con.close()
            used(self.database)
            if writing and ok:
                closed_with_schema(self.database)


def table_schema_metadata(con: duckdb.DuckDBPyConnection, table: str) -> dg.TableSchema:
    """`dagster/column_schema` of a warehouse table: from its declaration in
    radar_pipeline/metadata (types, descriptions, constraints, primary key); a table not declared
    there is described from the database's information_schema."""
    if table in WAREHOUSE:
        return WAREHOUSE[table].dagster_schema()
    cols = con.sql("select column_name, data_type from information_schema.columns "
                   "where table_name = $t order by ordinal_position", params={"t": table}).fetchall()
    return dg.TableSchema(columns=[dg.TableColumn(name, dtype) for name, dtype in cols])


def declared_table_schema(table: str) -> dg.TableSchema:
    """Column schema of a warehouse table as declared (radar_pipeline/metadata, else
    sql/warehouse/create_tables.sql).

    For definition-level metadata: assets with many partitions must not repeat a
    schema in every partition's materialization event (100k copies of it).
    """
    if table in WAREHOUSE:
        return WAREHOUSE[table].dagster_schema()
    con = duckdb.connect()
    try:
        ensure_schema(con)
        return table_schema_metadata(con, table)
    finally:
        con.close()
