"""pandera (polars) schemas of the published, BI-facing tables, generated from their one
declaration in radar_pipeline/metadata/published.py.

The same declarations give the `data_dictionary` table, the COMMENT ON of every published
table and column and docs/data_dictionary.md (DuckDB's information_schema adds the column
types). The schemas are strict, so a column added to a sql/publish/*.sql file without a
declaration fails the publish (and the tests) instead of reaching BI tools undocumented.
"""
from __future__ import annotations

import pandera.polars as pa

from radar_pipeline.metadata import PUBLISHED

# Order = publish order = order in the data dictionary.
SCHEMAS: dict[str, pa.DataFrameSchema] = {name: table.pandera(strict=True) for name, table in PUBLISHED.items()}

countries = SCHEMAS["countries"]
country_risk = SCHEMAS["country_risk"]
country_risk_wide = SCHEMAS["country_risk_wide"]
inherent_risk = SCHEMAS["inherent_risk"]
inherent_risk_overall = SCHEMAS["inherent_risk_overall"]
edition_sources = SCHEMAS["edition_sources"]
coverage_report = SCHEMAS["coverage_report"]
site_scores_latest = SCHEMAS["site_scores_latest"]
site_scores_history = SCHEMAS["site_scores_history"]
site_score_factors = SCHEMAS["site_score_factors"]
site_nonconformities = SCHEMAS["site_nonconformities"]
site_rejects = SCHEMAS["site_rejects"]
data_dictionary = SCHEMAS["data_dictionary"]
publish_info = SCHEMAS["publish_info"]
