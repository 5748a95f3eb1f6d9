"""Radar supply-chain risk pipeline (Dagster + DuckDB)."""

METHODOLOGY_VERSION = "radar-2023.1"
