"""Read the dbt-style SQL files under `<repo>/sql/` and run them on DuckDB."""
from __future__ import annotations

import duckdb
import polars as pl

from radar_pipeline.settings import SQL_DIR


def read_sql(name: str) -> str:
    """Text of `sql/<name>.sql`, e.g. read_sql("sectors/inherent_risk")."""
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"no SQL file {path}")
    return path.read_text(encoding="utf-8")


def run_sql(con: duckdb.DuckDBPyConnection, name: str, **params) -> pl.DataFrame:
    """Run one SELECT file with named parameters ($edition ...) and return a polars frame."""
    return con.sql(read_sql(name), params=params or None).pl()
