"""pandera (polars backend) schemas for every table the pipeline writes.

Called directly inside assets and asset checks (dagster-pandera does not
support the polars backend). The same schemas generate the data dictionary.
"""
from __future__ import annotations

import pandera.polars as pa
import polars as pl

from radar_pipeline.methodology import DIRECTIONS, IMPUTATION_METHODS, TOPICS

ISO3 = r"^[A-Z]{3}$"

indicator_registry = pa.DataFrameSchema(
    {
        "indicator_id": pa.Column(str, pa.Check.str_matches(r"^[a-z0-9_]+$"), unique=True,
                                  description="Indicator id used in every table"),
        "topic": pa.Column(str, pa.Check.isin(TOPICS), description="One of the 14 topic ids"),
        "source": pa.Column(str, description="Adapter that reads it (= mirror folder)"),
        "direction": pa.Column(str, pa.Check.isin(DIRECTIONS)),
        "unit": pa.Column(str, nullable=True),
        "note": pa.Column(str, nullable=True),
    },
    name="indicator_registry", strict=True,
)

countries = pa.DataFrameSchema(
    {
        "iso3": pa.Column(str, pa.Check.str_matches(ISO3), unique=True, description="ISO 3166-1 alpha-3"),
        "iso2": pa.Column(str, nullable=True),
        "m49": pa.Column(str, nullable=True, description="UN M49 code (null for Taiwan and Kosovo, which "
                                                          "M49 does not list: rules/universe_additions.csv)"),
        "name": pa.Column(str),
        "region": pa.Column(str, description="M49 region (gap-fill fallback)"),
        "subregion": pa.Column(str, nullable=True, description="M49 sub-region"),
        "intermediate_region": pa.Column(str, nullable=True, description="M49 intermediate region"),
        "ldc": pa.Column(bool, nullable=True),
        "lldc": pa.Column(bool, nullable=True),
        "sids": pa.Column(bool, nullable=True),
    },
    name="countries",
)

indicator_observations = pa.DataFrameSchema(
    {
        "edition": pa.Column(pl.Int32, pa.Check.in_range(1990, 2100)),
        "source": pa.Column(str),
        "indicator_id": pa.Column(str),
        "iso3": pa.Column(str, pa.Check.str_matches(ISO3)),
        "data_year": pa.Column(pl.Int32, pa.Check.in_range(1960, 2100)),
        "value": pa.Column(float, pa.Check(lambda d: d.lazyframe.select(pl.col(d.key).is_finite()),
                                           error="value must be finite")),
        "vintage": pa.Column(str),
        "file": pa.Column(str),
        "row_ref": pa.Column(str, nullable=True),
    },
    name="indicator_observations",
    unique=["edition", "indicator_id", "iso3", "data_year"],
)

indicator_scores = pa.DataFrameSchema(
    {
        "edition": pa.Column(pl.Int32),
        "indicator_id": pa.Column(str),
        "iso3": pa.Column(str, pa.Check.str_matches(ISO3)),
        "value": pa.Column(float, nullable=True, description="Source value (null when imputed)"),
        "data_year": pa.Column(pl.Int32, nullable=True),
        "score": pa.Column(float, pa.Check.in_range(1.0, 6.0), description="Normalised 1 (low) - 6 (high risk)"),
        "imputed": pa.Column(bool),
        "method": pa.Column(str, pa.Check.isin(IMPUTATION_METHODS)),
        "imputed_from": pa.Column(str, nullable=True, description="M49 group whose mean filled the gap"),
    },
    name="indicator_scores",
    unique=["edition", "indicator_id", "iso3"],
)

country_topic_risk = pa.DataFrameSchema(
    {
        "edition": pa.Column(pl.Int32),
        "iso3": pa.Column(str, pa.Check.str_matches(ISO3)),
        "topic": pa.Column(str, pa.Check.isin(TOPICS)),
        "score": pa.Column(float, pa.Check.in_range(1.0, 6.0)),
        "n_indicators": pa.Column(pl.Int32, pa.Check.ge(1)),
        "n_imputed": pa.Column(pl.Int32, pa.Check.ge(0)),
        "confidence": pa.Column(float, pa.Check.in_range(0.0, 1.0),
                                description="Mean over the topic's indicators of 1 (observed), 0.5 (imputed "
                                            "from a region), 0 (world mean) — METHODOLOGY §8a"),
        "missing_topics": pa.Column(str, description="Topics allowed missing in this edition"),
    },
    name="country_topic_risk",
    unique=["edition", "iso3", "topic"],
)


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
