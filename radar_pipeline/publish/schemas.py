"""pandera (polars) schemas of the published, BI-facing tables.

Every column carries a description: together with DuckDB's information_schema
(for the column types) they generate the `data_dictionary` table and
docs/data_dictionary.md. The schemas are strict, so a column added to a
sql/publish/*.sql file without a description here fails the publish (and the
tests) instead of reaching BI tools undocumented.
"""
from __future__ import annotations

import pandera.polars as pa
import polars as pl

from radar_pipeline.methodology import CATEGORIES, PILLARS, TOPICS, category_text

ISO3 = r"^[A-Z]{3}$"
ID = r"^[A-Za-z0-9._-]{1,64}$"
PILLAR_NAMES = tuple(PILLARS)  # rules/topics.csv


def c(dtype, description: str, *checks: pa.Check, nullable: bool = True, unique: bool = False) -> pa.Column:
    return pa.Column(dtype, list(checks), nullable=nullable, unique=unique, description=description)


def score16(description: str, nullable: bool = False) -> pa.Column:
    return c(float, description, pa.Check.in_range(1.0, 6.0), nullable=nullable)


EDITION = lambda: c(pl.Int32, "Methodology edition (refresh year)", pa.Check.in_range(1990, 2100),  # noqa: E731
                    nullable=False)
ISO3_COL = lambda: c(pl.Utf8, "ISO 3166-1 alpha-3 country code", pa.Check.str_matches(ISO3),  # noqa: E731
                     nullable=False)
COUNTRY_NAME = lambda: c(pl.Utf8, "Country or area name (UN M49)")  # noqa: E731
REGION = lambda: c(pl.Utf8, "UN M49 region")  # noqa: E731
SUBREGION = lambda: c(pl.Utf8, "UN M49 sub-region")  # noqa: E731
ISIC_CLASS = lambda: c(pl.Utf8, "ISIC Rev.4 class (4 digits)")  # noqa: E731
ISIC_TITLE = lambda: c(pl.Utf8, "ISIC Rev.4 class title")  # noqa: E731
ISIC_SECTION = lambda: c(pl.Utf8, "ISIC Rev.4 section letter (A-U)")  # noqa: E731
SITE_ID = lambda: c(pl.Utf8, "Supplier site id as sent by the buyer", pa.Check.str_matches(ID),  # noqa: E731
                    nullable=False)
MISSING = lambda: c(pl.Utf8, "Comma-separated topics that had no data in this edition "  # noqa: E731
                             "(left out of every mean); empty when all 14 are present")
METHODOLOGY_VERSION = lambda: c(pl.Utf8, "Methodology version (METHODOLOGY §8c): package version + "  # noqa: E731
                                         "fingerprint of the rule tables and SQL that produced the row; "
                                         "`radar methodology` lists the files it covers")
CONFIDENCE_LABEL = lambda: c(pl.Utf8, "Confidence label: high (>= 0.8), medium (>= 0.5), low",  # noqa: E731
                             pa.Check.isin(("high", "medium", "low")))

countries = pa.DataFrameSchema({
    "iso3": c(pl.Utf8, "ISO 3166-1 alpha-3 country code", pa.Check.str_matches(ISO3), nullable=False, unique=True),
    "iso2": c(pl.Utf8, "ISO 3166-1 alpha-2 country code"),
    "m49": c(pl.Utf8, "UN M49 numeric code (null for Taiwan and Kosovo, which M49 does not list)"),
    "country_name": COUNTRY_NAME(),
    "region": REGION(),
    "subregion": SUBREGION(),
    "intermediate_region": c(pl.Utf8, "UN M49 intermediate region"),
    "ldc": c(pl.Boolean, "Least developed country (UN M49)"),
    "lldc": c(pl.Boolean, "Land-locked developing country (UN M49)"),
    "sids": c(pl.Boolean, "Small island developing state (UN M49)"),
}, name="countries", strict=True,
    description="Country dimension: every UN M49 country/area with a region, plus Taiwan (TWN) and Kosovo "
                "(XKX) (METHODOLOGY §1), as described in the newest edition that has it. One row per iso3.")

country_risk = pa.DataFrameSchema({
    "edition": EDITION(),
    "iso3": ISO3_COL(),
    "country_name": COUNTRY_NAME(),
    "region": REGION(),
    "subregion": SUBREGION(),
    "topic": c(pl.Utf8, "Topic id (one of the 14 topics of METHODOLOGY §1)", pa.Check.isin(TOPICS), nullable=False),
    "pillar": c(pl.Utf8, "Pillar of the topic", pa.Check.isin(PILLAR_NAMES)),
    "score": score16("Country topic risk, 1 (low) - 6 (high): mean of the topic's indicator scores"),
    "n_indicators": c(pl.Int32, "Indicators averaged into the score", nullable=False),
    "n_imputed": c(pl.Int32, "Of those, indicators gap-filled from a regional mean", nullable=False),
    "confidence": c(float, "Confidence 0-1 (METHODOLOGY §8a): mean over the topic's indicators of 1 (observed), "
                           "0.5 (imputed from a region), 0 (world mean)", pa.Check.in_range(0.0, 1.0),
                    nullable=False),
    "missing_topics": MISSING(),
    "methodology_version": METHODOLOGY_VERSION(),
}, name="country_risk", strict=True, unique=["edition", "iso3", "topic"],
    description="Country risk in long form: one row per edition x country x topic.")

country_risk_wide = pa.DataFrameSchema({
    "edition": EDITION(),
    "iso3": ISO3_COL(),
    "country_name": COUNTRY_NAME(),
    "region": REGION(),
    "subregion": SUBREGION(),
    **{t: score16(f"Country risk 1-6 on topic {t} (null when the topic had no data in this edition)",
                  nullable=True) for t in TOPICS},
    "mean_score": score16("Mean over the topics present"),
    "n_topics": c(pl.Int32, "Number of topics present", nullable=False),
    "confidence": c(float, "Country confidence 0-1: mean of the 14 topic confidences, a missing topic counting 0 "
                           "(METHODOLOGY §8a)", pa.Check.in_range(0.0, 1.0), nullable=False),
    "missing_topics": MISSING(),
    "methodology_version": METHODOLOGY_VERSION(),
}, name="country_risk_wide", strict=True, unique=["edition", "iso3"],
    description="Country risk in wide form: one row per edition x country, one column per topic.")

inherent_risk = pa.DataFrameSchema({
    "edition": EDITION(),
    "iso3": ISO3_COL(),
    "country_name": COUNTRY_NAME(),
    "isic_class": ISIC_CLASS(),
    "isic_title": ISIC_TITLE(),
    "isic_section": ISIC_SECTION(),
    "topic": c(pl.Utf8, "Topic id", pa.Check.isin(TOPICS), nullable=False),
    "country_score": score16("Country topic risk 1-6 (country_risk.score)"),
    "sector_weight": c(float, "Sector weight 0-4 of the class's division/section on this topic (METHODOLOGY §3)",
                       nullable=False),
    "hrg_uplift": c(float, "High-risk-goods uplift for this country x class x topic (METHODOLOGY §4)",
                    nullable=False),
    "score": c(float, "Inherent risk of the topic for this country x class (METHODOLOGY §5)", nullable=False),
    "methodology_version": METHODOLOGY_VERSION(),
}, name="inherent_risk", strict=True,
    description="Inherent risk per edition x country x ISIC class x topic, with its three ingredients.")

inherent_risk_overall = pa.DataFrameSchema({
    "edition": EDITION(),
    "iso3": ISO3_COL(),
    "country_name": COUNTRY_NAME(),
    "region": REGION(),
    "isic_class": ISIC_CLASS(),
    "isic_title": ISIC_TITLE(),
    "isic_section": ISIC_SECTION(),
    "score": c(float, "Inherent risk: mean over the topics present", nullable=False),
    "labour_standards": c(float, "Mean inherent risk over the labour-standards topics"),
    "health_safety": c(float, "Inherent risk on health and safety"),
    "business_ethics": c(float, "Inherent risk on business ethics"),
    "environment": c(float, "Mean inherent risk over the environment topics"),
    "is_primary_producer": c(pl.Boolean, "The class is a primary producer (agriculture, mining...)",
                             nullable=False),
    "missing_topics": MISSING(),
    "confidence": c(float, "Inherent confidence 0-1 (METHODOLOGY §8a): mean of the country's 14 topic "
                           "confidences, a missing topic counting 0", pa.Check.in_range(0.0, 1.0)),
    "confidence_label": CONFIDENCE_LABEL(),
    "methodology_version": METHODOLOGY_VERSION(),
}, name="inherent_risk_overall", strict=True, unique=["edition", "iso3", "isic_class"],
    description="Inherent risk per edition x country x ISIC class (one score, pillar means for display).")

_site_score_columns = {
    "edition": EDITION(),
    "site_id": SITE_ID(),
    "site_name": c(pl.Utf8, "Site name as sent by the buyer"),
    "iso3": c(pl.Utf8, "Country of the site (ISO3)"),
    "country_name": COUNTRY_NAME(),
    "region": REGION(),
    "subregion": SUBREGION(),
    "isic_code": c(pl.Utf8, "ISIC code as sent (section, division, group or class)"),
    "isic_class": c(pl.Utf8, "ISIC class used for inherent risk"),
    "isic_title": ISIC_TITLE(),
    "isic_section": ISIC_SECTION(),
    "is_primary_producer": c(pl.Boolean, "The site's class is a primary producer"),
    "inherent": c(float, "Inherent risk of the site's country x class (METHODOLOGY §6)"),
    "labour_standards": c(float, "Inherent risk, labour-standards pillar"),
    "health_safety": c(float, "Inherent risk, health-and-safety pillar"),
    "business_ethics": c(float, "Inherent risk, business-ethics pillar"),
    "environment": c(float, "Inherent risk, environment pillar"),
    "site_characteristics": c(float, "Site-characteristics score from the SAQ (METHODOLOGY §7)"),
    "raw_points": c(float, "SAQ risk points before scaling"),
    "total_available": c(float, "SAQ points available"),
    "n_unanswered": c(pl.Int64, "SAQ questions left unanswered"),
    "management_controls": c(float, "Management-controls score (METHODOLOGY §8)"),
    "mc_rounded": c(float, "Management-controls score rounded as the adjustment rule uses it"),
    "open_critical": c(pl.Int64, "Open business-critical/critical audit findings"),
    "open_major": c(pl.Int64, "Open major audit findings"),
    "base": c(float, "Score before the adjustment"),
    "adjustment": c(pl.Utf8, "Adjustment applied: none, reduction_0.75, reduction_0.90 or floor_6.0"),
    "final_score": c(float, "Final site score 0-10 (rounded to 1 decimal)", pa.Check.in_range(0.0, 10.0)),
    "category_calculated": c(pl.Utf8, "Category of the final score: " + category_text(),
                             pa.Check.isin(CATEGORIES)),
    "category": c(pl.Utf8, "Risk category: an analyst's override where one is in force (METHODOLOGY §8b), "
                           "else category_calculated", pa.Check.isin(CATEGORIES)),
    "override_reason": c(pl.Utf8, "Reason of the override in force (null when none)"),
    "override_author": c(pl.Utf8, "Author of the override in force (null when none)"),
    "inherent_only": c(pl.Boolean, "No questionnaire: the score is the inherent risk only"),
    "missing_topics": MISSING(),
    "inherent_confidence": c(float, "Confidence 0-1 of the site's inherent risk (METHODOLOGY §8a)",
                             pa.Check.in_range(0.0, 1.0)),
    "saq_completeness": c(float, "Answered SAQ factors / all factors (0 without a questionnaire)",
                          pa.Check.in_range(0.0, 1.0)),
    "confidence": c(float, "Site confidence 0-1 = 0.5 x inherent_confidence + 0.5 x saq_completeness; "
                           "it qualifies the score and never changes it", pa.Check.in_range(0.0, 1.0)),
    "confidence_label": CONFIDENCE_LABEL(),
    "previous_edition": c(pl.Int32, "The site's previous scored edition (null for its first)"),
    "previous_final_score": c(float, "final_score in previous_edition"),
    "previous_category": c(pl.Utf8, "category in previous_edition"),
    "score_change": c(float, "final_score - previous_final_score, rounded to 1 decimal"),
    "methodology_version": METHODOLOGY_VERSION(),
    "scored_at": c(pl.Datetime("us"), "When the score was computed (UTC)"),
}

site_scores_history = pa.DataFrameSchema(
    _site_score_columns, name="site_scores_history", strict=True, unique=["edition", "site_id"],
    description="Every site score per edition, with names and the change since the site's previous edition.")

site_scores_latest = pa.DataFrameSchema(
    _site_score_columns, name="site_scores_latest", strict=True, unique=["site_id"],
    description="Each site's score in the latest edition it was scored for (same columns as "
                "site_scores_history).")

site_score_factors = pa.DataFrameSchema({
    "edition": EDITION(),
    "site_id": SITE_ID(),
    "kind": c(pl.Utf8, "inherent_topic, saq_factor, control, adjustment, override or confidence",
              nullable=False),
    "item": c(pl.Utf8, "Factor, control id, inherent part or adjustment name", nullable=False),
    "detail": c(pl.Utf8, "Answer, level or rule that produced the points"),
    "points": c(float, "Points contributed (confidence rows: the confidence 0-1)"),
    "methodology_version": METHODOLOGY_VERSION(),
}, name="site_score_factors", strict=True,
    description="Explanation of every site score: one row per site x edition x factor (METHODOLOGY §8.6).")

site_nonconformities = pa.DataFrameSchema({
    "site_id": SITE_ID(),
    "site_name": c(pl.Utf8, "Site name"),
    "iso3": c(pl.Utf8, "Country of the site (ISO3)"),
    "nc_id": c(pl.Utf8, "Finding id as sent", nullable=False),
    "severity": c(pl.Utf8, "business_critical, critical, major, minor or observation", nullable=False),
    "status": c(pl.Utf8, "open or closed", pa.Check.isin(("open", "closed")), nullable=False),
    "raised_on": c(pl.Date, "Date the finding was raised"),
    "closed_on": c(pl.Date, "Date the finding was closed"),
}, name="site_nonconformities", strict=True,
    description="Audit findings (non-conformities) of each site's latest accepted record.")

site_rejects = pa.DataFrameSchema({
    "file": c(pl.Utf8, "Site file name", nullable=False),
    "file_sha256": c(pl.Utf8, "SHA-256 of the file content", nullable=False),
    "line": c(pl.Int64, "Line number in the file"),
    "site_id": c(pl.Utf8, "Site id on the line, when readable"),
    "field": c(pl.Utf8, "Field that failed validation"),
    "reason": c(pl.Utf8, "Why the line was rejected", nullable=False),
    "received_at": c(pl.Datetime("us"), "When the file was processed (UTC)", nullable=False),
    "resolved_at": c(pl.Datetime("us"), "When a later file (or file version) was accepted for the same site "
                                        "(UTC); null = still open"),
}, name="site_rejects", strict=True,
    description="Site file lines rejected at intake, with the reason.")

edition_sources = pa.DataFrameSchema({
    "edition": EDITION(),
    "source": c(pl.Utf8, "Source adapter (= folder of the sources mirror), e.g. worldbank_wdi, eu_cahra",
                nullable=False),
    "vintage": c(pl.Utf8, "Vintage folder the edition read (labelled by its release: 2023, 2023-03, FY2023)",
                 nullable=False),
    "release_year": c(pl.Int32, "Year the vintage was released (null: not edition-bound, e.g. a classification)"),
    "released_after_edition": c(pl.Boolean, "True when no vintage of the source was released by the edition "
                                            "and the oldest one was used instead (METHODOLOGY §1)", nullable=False),
    "indicators": c(pl.Utf8, "Comma-separated indicators read from this vintage (null for lists: CAHRA, ILAB "
                             "goods, UN M49)"),
    "rule": c(pl.Utf8, "Why this vintage: newest released by the edition, oldest (none released), "
                       "not edition-bound", nullable=False),
}, name="edition_sources", strict=True, unique=["edition", "source", "vintage"],
    description="Source vintages each edition read, as of the edition: one row per edition x source x vintage.")

coverage_report = pa.DataFrameSchema({
    "edition": EDITION(),
    "topic": c(pl.Utf8, "Country-risk topic (METHODOLOGY §2)", pa.Check.isin(TOPICS), nullable=False),
    "n_countries": c(pl.Int32, "Countries in the edition's universe", nullable=False),
    "observed": c(pl.Int32, "Countries whose topic score uses only observed values (no indicator imputed)",
                  nullable=False),
    "partly_imputed": c(pl.Int32, "Countries with some of the topic's indicators imputed from region means",
                        nullable=False),
    "imputed": c(pl.Int32, "Countries with every indicator of the topic imputed", nullable=False),
    "missing": c(pl.Int32, "Countries without a topic score (the topic had no data in the edition)",
                 nullable=False),
    "share_observed": c(float, "observed / n_countries", pa.Check.in_range(0.0, 1.0)),
    "indicators": c(pl.Int32, "Indicators the registry lists for the topic", nullable=False),
    "indicators_with_data": c(pl.Int32, "Of those, indicators with at least one observed country", nullable=False),
    "indicator_observed": c(pl.Utf8, "Countries observed per indicator: 'indicator_id N; ...'", nullable=False),
    "vintages": c(pl.Utf8, "Publisher vintages the topic's values came from: 'source vintage; ...' (null: "
                           "no data); '(released after the edition)' marks a vintage newer than the edition"),
    "data_year_min": c(pl.Int32, "Earliest data year among the topic's observations in the edition window"),
    "data_year_max": c(pl.Int32, "Latest data year among the topic's observations in the edition window"),
    "methodology_version": METHODOLOGY_VERSION(),
}, name="coverage_report", strict=True, unique=["edition", "topic"],
    description="Coverage per edition x topic: countries observed / partly imputed / imputed / missing and "
                "the source vintages used.")

data_dictionary = pa.DataFrameSchema({
    "table_name": c(pl.Utf8, "Published table", nullable=False),
    "table_description": c(pl.Utf8, "What one row of the table is"),
    "ordinal_position": c(pl.Int32, "Column position (1-based)", nullable=False),
    "column_name": c(pl.Utf8, "Column", nullable=False),
    "data_type": c(pl.Utf8, "DuckDB type", nullable=False),
    "nullable": c(pl.Boolean, "Whether the column may be null", nullable=False),
    "description": c(pl.Utf8, "What the column means", nullable=False),
}, name="data_dictionary", strict=True, unique=["table_name", "column_name"],
    description="This dictionary: one row per published table x column.")

publish_info = pa.DataFrameSchema({
    "snapshot_id": c(pl.Utf8, "Id of this published snapshot (UTC time + random suffix)", nullable=False),
    "scope": c(pl.Utf8, "'all' for the main file, 'buyer:<buyer_id>' for a buyer's file", nullable=False),
    "published_at": c(pl.Datetime("us"), "When the snapshot was built (UTC)", nullable=False),
    "source_warehouse": c(pl.Utf8, "Path of the pipeline warehouse it was built from", nullable=False),
    "table_name": c(pl.Utf8, "Published table", nullable=False),
    "row_count": c(pl.Int64, "Rows in that table in this snapshot", nullable=False),
}, name="publish_info", strict=True, unique=["table_name"],
    description="Provenance of the snapshot: one row per published table with its row count.")

# Order = publish order = order in the data dictionary.
SCHEMAS: dict[str, pa.DataFrameSchema] = {s.name: s for s in (
    countries, country_risk, country_risk_wide, inherent_risk, inherent_risk_overall, edition_sources,
    coverage_report,
    site_scores_latest, site_scores_history, site_score_factors, site_nonconformities, site_rejects,
    data_dictionary, publish_info)}
