"""Run one of the dbt-style SQL files under `<repo>/sql/` and get a polars frame."""
from __future__ import annotations

import duckdb
import polars as pl

from radar_pipeline.platform.warehouse import read_sql
from radar_pipeline.rules import rule_sql

__all__ = ["read_sql", "run_sql"]


def run_sql(con: duckdb.DuckDBPyConnection, name: str, **params) -> pl.DataFrame:
    """Run one SELECT file with named parameters ($edition ...) and return a polars frame.
    The rule tables and macros of radar_pipeline.rules.rule_sql are installed on `con` first."""
    rule_sql.install(con)
    return con.sql(read_sql(name), params=params or None).pl()
