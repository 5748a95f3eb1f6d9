"""Radar supply-chain risk pipeline (Dagster + DuckDB)."""
