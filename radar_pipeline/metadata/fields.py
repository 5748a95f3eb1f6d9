"""Columns that more than one table has, declared once (name, DuckDB type, description,
constraints). A table lists them by name (`F["iso3"]`); a table-specific wording or rule is
`F["score"].but(description=...)` in the table's declaration. Columns only one table has are
declared inline in that table (radar_pipeline/metadata/warehouse.py, published.py).

Where a column is published, its description here is the one the data dictionary, the
published file's COMMENT ON and the Dagster UI show.
"""
from __future__ import annotations

from radar_pipeline.metadata.classes import Field
from radar_pipeline.rules.methodology import CATEGORIES, TOPICS, category_text

ISO3 = r"^[A-Z]{3}$"
ID = r"^[A-Za-z0-9._-]{1,64}$"
CONFIDENCE_LABELS = ("high", "medium", "low")

_FIELDS = [
    # --- editions, countries -------------------------------------------------------------
    Field("edition", "integer", "Methodology edition (refresh year)", nullable=False, range=(1990, 2100)),
    Field("iso3", "varchar", "ISO 3166-1 alpha-3 country code", nullable=False, regex=ISO3),
    Field("iso2", "varchar", "ISO 3166-1 alpha-2 country code"),
    Field("m49", "varchar", "UN M49 numeric code (null for Taiwan and Kosovo, which M49 does not list)"),
    Field("country_name", "varchar", "Country or area name (UN M49)"),
    Field("region", "varchar", "UN M49 region"),
    Field("subregion", "varchar", "UN M49 sub-region"),
    Field("intermediate_region", "varchar", "UN M49 intermediate region"),
    Field("ldc", "boolean", "Least developed country (UN M49)"),
    Field("lldc", "boolean", "Land-locked developing country (UN M49)"),
    Field("sids", "boolean", "Small island developing state (UN M49)"),
    # --- sources, indicators, topics ----------------------------------------------------
    Field("source", "varchar", "Source adapter (= folder of the sources mirror), e.g. worldbank_wdi, eu_cahra",
          nullable=False),
    Field("vintage", "varchar", "Vintage folder the edition read (labelled by its release: 2023, 2023-03, FY2023)",
          nullable=False),
    Field("file", "varchar", "File name", nullable=False),
    Field("row_ref", "varchar", "Where in the file the row is (line, sheet!cell, ...)"),
    Field("indicator_id", "varchar", "Indicator id used in every table", nullable=False),
    Field("topic", "varchar", "Topic id (one of the 14 topics of METHODOLOGY §1)", nullable=False, isin=TOPICS),
    Field("data_year", "integer", "Year the value refers to"),
    Field("value", "double", "Source value (null when imputed)"),
    Field("score", "double", "Score", nullable=False),
    Field("n_indicators", "integer", "Indicators averaged into the score", nullable=False),
    Field("n_imputed", "integer", "Of those, indicators gap-filled from a regional mean", nullable=False),
    Field("missing_topics", "varchar", "Comma-separated topics that had no data in this edition "
                                       "(left out of every mean); empty when all 14 are present"),
    Field("methodology_version", "varchar",
          "Methodology version (METHODOLOGY §8c): package version + fingerprint of the rule tables and SQL "
          "that produced the row; `radar methodology` lists the files it covers"),
    Field("confidence", "double", "Confidence 0-1 (METHODOLOGY §8a)", range=(0.0, 1.0)),
    Field("confidence_label", "varchar", "Confidence label: high (>= 0.8), medium (>= 0.5), low",
          isin=CONFIDENCE_LABELS),
    # --- sectors -------------------------------------------------------------------------
    Field("isic_code", "varchar", "ISIC code as sent (section, division, group or class)"),
    Field("isic_class", "varchar", "ISIC Rev.4 class (4 digits)"),
    Field("isic_title", "varchar", "ISIC Rev.4 class title"),
    Field("isic_section", "varchar", "ISIC Rev.4 section letter (A-U)"),
    Field("level", "varchar", "ISIC level of the code: section, division, group or class", nullable=False),
    Field("country_score", "double", "Country topic risk 1-6 (country_risk.score)", nullable=False,
          range=(1.0, 6.0)),
    Field("sector_weight", "double",
          "Sector weight 0-4 of the class's division/section on this topic (METHODOLOGY §3)", nullable=False),
    Field("hrg_uplift", "double", "High-risk-goods uplift for this country x class x topic (METHODOLOGY §4)",
          nullable=False),
    Field("is_primary_producer", "boolean", "The class is a primary producer (agriculture, mining...)",
          nullable=False),
    Field("labour_standards", "double", "Mean inherent risk over the labour-standards topics"),
    Field("health_safety", "double", "Inherent risk on health and safety"),
    Field("business_ethics", "double", "Inherent risk on business ethics"),
    Field("environment", "double", "Mean inherent risk over the environment topics"),
    # --- sites ---------------------------------------------------------------------------
    Field("site_id", "varchar", "Supplier site id as sent by the buyer", nullable=False, regex=ID),
    Field("site_name", "varchar", "Site name as sent by the buyer"),
    Field("source_file", "varchar", "File the row came from", nullable=False),
    Field("source_line", "bigint", "Line of that file", nullable=False),
    Field("content_hash", "varchar", "Hash of the site's normalised record (detects a changed site)",
          nullable=False),
    Field("nc_id", "varchar", "Finding id as sent", nullable=False),
    Field("severity", "varchar", "business_critical, critical, major, minor or observation", nullable=False),
    Field("status", "varchar", "open or closed", nullable=False, isin=("open", "closed")),
    Field("raised_on", "date", "Date the finding was raised"),
    Field("closed_on", "date", "Date the finding was closed"),
    Field("file_sha256", "varchar", "SHA-256 of the file content", nullable=False),
    Field("line", "bigint", "Line number in the file"),
    Field("reason", "varchar", "Why the row was left out", nullable=False),
    Field("received_at", "timestamp", "When the file was processed (UTC)", nullable=False),
    Field("resolved_at", "timestamp", "When a later file (or file version) was accepted for the same site "
                                      "(UTC); null = still open"),
    # site scores (METHODOLOGY §6-§9): the warehouse's site_scores and the published site tables
    Field("inherent", "double", "Inherent risk of the site's country x class (METHODOLOGY §6)"),
    Field("site_characteristics", "double", "Site-characteristics score from the SAQ (METHODOLOGY §7)"),
    Field("raw_points", "double", "SAQ risk points before scaling"),
    Field("total_available", "double", "SAQ points available"),
    Field("n_unanswered", "bigint", "SAQ questions left unanswered"),
    Field("management_controls", "double", "Management-controls score (METHODOLOGY §8)"),
    Field("mc_rounded", "double", "Management-controls score rounded as the adjustment rule uses it"),
    Field("open_critical", "bigint", "Open business-critical/critical audit findings"),
    Field("open_major", "bigint", "Open major audit findings"),
    Field("base", "double", "Score before the adjustment"),
    Field("adjustment", "varchar", "Adjustment applied: none, reduction_0.75, reduction_0.90 or floor_6.0"),
    Field("final_score", "double", "Final site score 0-10 (rounded to 1 decimal)", range=(0.0, 10.0)),
    Field("category_calculated", "varchar", "Category of the final score: " + category_text(), isin=CATEGORIES),
    Field("category", "varchar", "Risk category: an analyst's override where one is in force (METHODOLOGY §8b), "
                                 "else category_calculated", isin=CATEGORIES),
    Field("override_reason", "varchar", "Reason of the override in force (null when none)"),
    Field("override_author", "varchar", "Author of the override in force (null when none)"),
    Field("inherent_only", "boolean", "No questionnaire: the score is the inherent risk only"),
    Field("inherent_confidence", "double", "Confidence 0-1 of the site's inherent risk (METHODOLOGY §8a)",
          range=(0.0, 1.0)),
    Field("saq_completeness", "double", "Answered SAQ factors / all factors (0 without a questionnaire)",
          range=(0.0, 1.0)),
    Field("scored_at", "timestamp", "When the score was computed (UTC)"),
    Field("kind", "varchar", "inherent_topic, saq_factor, control, adjustment, override or confidence",
          nullable=False),
    Field("item", "varchar", "Factor, control id, inherent part or adjustment name", nullable=False),
    Field("detail", "varchar", "Answer, level or rule that produced the points"),
    Field("points", "double", "Points contributed (confidence rows: the confidence 0-1)"),
    Field("buyer_id", "varchar", "Buyer id (names the buyer's published file)", nullable=False),
    # --- publish ---------------------------------------------------------------------------
    Field("table_name", "varchar", "Published table", nullable=False),
]

F: dict[str, Field] = {f.name: f for f in _FIELDS}
assert len(F) == len(_FIELDS), "a field is declared twice"

# The same column in another context (one declaration per meaning, reused by every table that
# has that meaning).
SITE_ISO3 = F["iso3"].but(description="Country of the site (ISO3)", nullable=True, regex=None)
SITE_ISIC_CLASS = F["isic_class"].but(description="ISIC class used for inherent risk")
SITE_IS_PRIMARY_PRODUCER = F["is_primary_producer"].but(description="The site's class is a primary producer",
                                                        nullable=True)
SITE_CONFIDENCE = F["confidence"].but(
    description="Site confidence 0-1 = 0.5 x inherent_confidence + 0.5 x saq_completeness; "
                "it qualifies the score and never changes it")
# inherent risk split by pillar, as the site tables show it
SITE_PILLARS = [
    F["labour_standards"].but(description="Inherent risk, labour-standards pillar"),
    F["health_safety"].but(description="Inherent risk, health-and-safety pillar"),
    F["business_ethics"].but(description="Inherent risk, business-ethics pillar"),
    F["environment"].but(description="Inherent risk, environment pillar"),
]
TOPIC_CONFIDENCE = F["confidence"].but(
    description="Confidence 0-1 (METHODOLOGY §8a): mean over the topic's indicators of 1 (observed), "
                "0.5 (imputed from peers of the same income group), 0.25 (imputed from geography alone), "
                "0 (world mean)", nullable=False)
INHERENT_CONFIDENCE = F["confidence"].but(
    description="Inherent confidence 0-1 (METHODOLOGY §8a): mean of the country's 14 topic "
                "confidences, a missing topic counting 0")


# site_remediation (issue 25 item 3: sql/sites/site_remediation.sql): the same columns in the
# warehouse and the published file
SITE_REMEDIATION = [
    F["edition"], F["site_id"],
    Field("step", "integer", "Order of the action (1 = first); the actions of a site are all needed",
          nullable=False, range=(1, 1000)),
    Field("action", "varchar", "close_finding, add_control, or none (no set of actions lowers the category)",
          nullable=False, isin=("close_finding", "add_control", "none")),
    Field("item", "varchar", "The finding (nc_id) or control (control_id) the action concerns"),
    Field("detail", "varchar", "What the action changes: points added and management controls after it, or "
          "the floor/reduction thresholds a closed finding lifts", nullable=False),
    Field("points", "double", "Control points the action adds (null for findings)"),
    Field("score_after", "double", "Final score once this action and every earlier one are done"),
    Field("category_after", "varchar", "Category of score_after"),
    F["methodology_version"].but(description="Methodology version (METHODOLOGY §8c) of the site stage"),
]


# How sure (issue 25 item 2, radar_pipeline/country_risk/uncertainty.py, sql/sites/site_uncertainty.sql):
# the same columns in the warehouse and the published file
_SHARE = {"range": (0.0, 1.0)}
COUNTRY_TOPIC_UNCERTAINTY = [
    F["edition"], F["iso3"], F["topic"],
    F["score"].but(description="Country topic risk as reported (country_topic_risk), 1-6", range=(1.0, 6.0)),
    Field("low", "double", "Lower end of the 90 % interval (5 % quantile of the seeded draws), 1-6",
          nullable=False, range=(1.0, 6.0)),
    Field("high", "double", "Upper end of the 90 % interval (95 % quantile of the seeded draws), 1-6",
          nullable=False, range=(1.0, 6.0)),
    Field("sd", "double", "Standard deviation of the draws", nullable=False, ge=0.0),
    Field("source", "varchar", "Where the uncertainty comes from, '+'-joined: publisher_se (a standard error "
          "the publisher states: TI CPI, WGI), donor_spread (imputed: the spread of the donors), normalisation "
          "(the country's own value is exact but other countries' errors move the min-max range); none",
          nullable=False, regex=r"^(none|(publisher_se|donor_spread|normalisation)(\+(publisher_se|donor_spread|"
          r"normalisation))*)$"),
    Field("n_draws", "integer", "Draws of the seeded simulation", nullable=False, ge=0),
    Field("seed", "bigint", "Seed of the simulation (same seed and inputs: identical draws)"),
    F["methodology_version"].but(description="Methodology version (METHODOLOGY §8c) of the country stage"),
]
SITE_UNCERTAINTY = [
    F["edition"], F["site_id"], F["category_calculated"], F["category"],
    Field("overridden", "boolean", "An analyst's override (METHODOLOGY §8b) sets the reported category: the "
          "shares and the stability are those of the calculated category", nullable=False),
    Field("p_low", "double", "Share of the draws in which the site's category is Low", **_SHARE),
    Field("p_medium", "double", "Share of the draws in which the site's category is Medium", **_SHARE),
    Field("p_high", "double", "Share of the draws in which the site's category is High", **_SHARE),
    Field("category_stability", "double", "Share of the draws that keep the calculated category (1: no draw "
          "changes it)", **_SHARE),
    Field("inherent_low", "double", "Site inherent risk, 5 % quantile of the draws"),
    Field("inherent_high", "double", "Site inherent risk, 95 % quantile of the draws"),
    Field("n_draws", "integer", "Draws the shares are taken over (0: the edition has no draws; shares null)",
          nullable=False, ge=0),
    Field("seed", "bigint", "Seed of the country simulation the draws come from"),
    F["methodology_version"].but(description="Methodology version (METHODOLOGY §8c) of the site stage"),
]
