"""What publish builds: the published tables (one sql/publish/<name>.sql each, in this order),
which of them are per site (a buyer's file keeps only its own rows), and the storage version
of the files."""
from __future__ import annotations

from radar_pipeline.platform import settings

PUBLISH_SQL_DIR = settings.SQL_DIR / "publish"
# Built from sql/publish/<name>.sql, in this order.
SQL_TABLES = ("countries", "country_risk", "country_risk_wide", "inherent_risk", "inherent_risk_overall",
              "edition_sources", "edition_status", "coverage_report", "country_picture", "benchmark_agreement",
              "benchmark_disagreements", "country_topic_uncertainty", "site_scores_history",
              "site_scores_latest", "site_score_factors", "site_remediation", "site_uncertainty",
              "site_nonconformities", "site_rejects")
# Tables with one row per site (or site line): a buyer's file keeps only its own sites' rows.
SITE_TABLES = ("site_scores_latest", "site_scores_history", "site_score_factors", "site_remediation",
               "site_uncertainty", "site_nonconformities", "site_rejects")
PUBLIC_TABLES = tuple(t for t in SQL_TABLES if t not in SITE_TABLES)
ALL_TABLES = (*SQL_TABLES, "data_dictionary", "publish_info")
# Storage format of every published file. DuckDB 2.0 writes v2.0.0 by default, which DuckDB 1.x
# (what most BI drivers bundle: DBeaver, Metabase, Superset's duckdb-engine installs) refuses to
# open. v1.1.0 is read by every DuckDB >= 1.1 and holds all the types the published tables use.
STORAGE_VERSION = "v1.1.0"


def publish_sql(name: str) -> str:
    return (PUBLISH_SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def quoted(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"
