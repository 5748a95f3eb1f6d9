"""pandera (polars backend) schemas of the warehouse tables the pipeline validates before
writing, generated from their one declaration in radar_pipeline/metadata/warehouse.py (which
also generates the DDL and the Dagster column metadata).

Called directly inside assets and asset checks (dagster-pandera does not
support the polars backend).
"""
from __future__ import annotations

import pandera.polars as pa
import polars as pl

from radar_pipeline.metadata import WAREHOUSE

# stamped on the rows after validation (METHODOLOGY §8c), so the validated frame lacks it
STAMPED = ("methodology_version",)

indicator_registry = WAREHOUSE["indicator_registry"].pandera(strict=True)
# checks the parsed M49 universe (the columns of the `countries` view) before it is written
countries = WAREHOUSE["countries"].pandera(exclude=STAMPED)
indicator_observations = WAREHOUSE["indicator_observations"].pandera()
indicator_scores = WAREHOUSE["indicator_scores"].pandera(exclude=STAMPED)
country_topic_risk = WAREHOUSE["country_topic_risk"].pandera(exclude=STAMPED)


def validate(schema: pa.DataFrameSchema, df: pl.DataFrame) -> list[str]:
    """Validate lazily; return readable failure lines (empty list = valid)."""
    try:
        schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        lines = []
        for row in cases.head(50).iter_rows(named=True):
            lines.append(f"{schema.name}: column {row.get('column')!s} check {row.get('check')!s} "
                         f"failed for value {row.get('failure_case')!s} (row {row.get('index')!s})")
        if cases.height > 50:
            lines.append(f"... and {cases.height - 50} more failures")
        return lines
    return []
