"""The published, BI-facing tables (sql/publish/*.sql build them), declared once: the pandera
schemas of radar_pipeline/publish/schemas.py, the `data_dictionary` table, the COMMENT ON of
every table and column of the published file and docs/data_dictionary.md come from here.

Every column needs a description: publish fails on a built column that is not declared
here (or a declared one that was not built), so nothing reaches BI tools undocumented.
Order = publish order = order in the data dictionary. `primary_key` is checked as unique.
"""
from __future__ import annotations

from radar_pipeline.metadata.benchmark_fields import AGREEMENT_FIELDS as BENCHMARK_AGREEMENT_FIELDS
from radar_pipeline.metadata.benchmark_fields import DISAGREEMENT_FIELDS as BENCHMARK_DISAGREEMENT_FIELDS
from radar_pipeline.metadata.benchmark_fields import MV as BENCHMARK_MV
from radar_pipeline.metadata.classes import Field, Table
from radar_pipeline.metadata.fields import (
    COUNTRY_TOPIC_UNCERTAINTY,
    INHERENT_CONFIDENCE,
    SITE_CONFIDENCE,
    SITE_IS_PRIMARY_PRODUCER,
    SITE_ISIC_CLASS,
    SITE_ISO3,
    SITE_PILLARS,
    SITE_REMEDIATION,
    SITE_UNCERTAINTY,
    TOPIC_CONFIDENCE,
    F,
)
from radar_pipeline.rules.methodology import PILLARS, TOPICS

MV = F["methodology_version"]
TOPIC_PILLARS = tuple(PILLARS)  # rules/topics.csv

_site_score_columns = [
    F["edition"], F["site_id"], F["site_name"], SITE_ISO3, F["country_name"], F["region"], F["subregion"],
    F["isic_code"], SITE_ISIC_CLASS, F["isic_title"], F["isic_section"], SITE_IS_PRIMARY_PRODUCER,
    F["inherent"], *SITE_PILLARS, F["site_characteristics"], F["raw_points"], F["total_available"],
    F["n_unanswered"], F["management_controls"], F["mc_rounded"], F["open_critical"], F["open_major"],
    F["base"], F["adjustment"], F["final_score"], F["category_calculated"], F["category"],
    F["override_reason"], F["override_author"],
    F["inherent_only"], F["missing_topics"], F["inherent_confidence"], F["saq_completeness"], SITE_CONFIDENCE,
    F["confidence_label"],
    Field("previous_edition", "integer", "The site's previous scored edition (null for its first)"),
    Field("previous_final_score", "double", "final_score in previous_edition"),
    Field("previous_category", "varchar", "category in previous_edition"),
    Field("score_change", "double", "final_score - previous_final_score, rounded to 1 decimal"),
    MV, F["scored_at"],
]

TABLES: list[Table] = [
    Table("countries",
          "Country dimension: every UN M49 country/area with a region, plus Taiwan (TWN) and Kosovo (XKX) "
          "(METHODOLOGY §1), as described in the newest edition that has it. One row per iso3.",
          [F["iso3"].but(unique=True), F["iso2"], F["m49"], F["country_name"], F["region"], F["subregion"],
           F["intermediate_region"], F["ldc"], F["lldc"], F["sids"],
           MV.but(description="Methodology version (METHODOLOGY §8c) of the edition the row describes")]),
    Table("country_risk", "Country risk in long form: one row per edition x country x topic.",
          [F["edition"], F["iso3"], F["country_name"], F["region"], F["subregion"], F["topic"],
           Field("pillar", "varchar", "Pillar of the topic", isin=TOPIC_PILLARS),
           F["score"].but(description="Country topic risk, 1 (low) - 6 (high): mean of the topic's indicator "
                                      "scores", range=(1.0, 6.0)),
           F["n_indicators"], F["n_imputed"], TOPIC_CONFIDENCE, F["missing_topics"], MV],
          primary_key=("edition", "iso3", "topic")),
    Table("country_risk_wide", "Country risk in wide form: one row per edition x country, one column per topic.",
          [F["edition"], F["iso3"], F["country_name"], F["region"], F["subregion"],
           *(Field(t, "double", f"Country risk 1-6 on topic {t} (null when the topic had no data in this edition)",
                   range=(1.0, 6.0)) for t in TOPICS),
           Field("mean_score", "double", "Mean over the topics present", nullable=False, range=(1.0, 6.0)),
           Field("n_topics", "integer", "Number of topics present", nullable=False),
           F["confidence"].but(description="Country confidence 0-1: mean of the 14 topic confidences, a missing "
                                           "topic counting 0 (METHODOLOGY §8a)", nullable=False),
           F["missing_topics"], MV],
          primary_key=("edition", "iso3")),
    Table("inherent_risk", "Inherent risk per edition x country x ISIC class x topic, with its three ingredients.",
          [F["edition"], F["iso3"], F["country_name"], F["isic_class"], F["isic_title"], F["isic_section"],
           F["topic"].but(description="Topic id"), F["country_score"], F["sector_weight"],
           F["hrg_uplift"],
           F["score"].but(description="Inherent risk of the topic for this country x class (METHODOLOGY §5)"), MV]),
    Table("inherent_risk_overall",
          "Inherent risk per edition x country x ISIC class (one score, pillar means for display).",
          [F["edition"], F["iso3"], F["country_name"], F["region"], F["isic_class"], F["isic_title"],
           F["isic_section"], F["score"].but(description="Inherent risk: mean over the topics present"),
           F["labour_standards"], F["health_safety"], F["business_ethics"], F["environment"],
           F["is_primary_producer"], F["missing_topics"], INHERENT_CONFIDENCE, F["confidence_label"], MV],
          primary_key=("edition", "iso3", "isic_class")),
    Table("edition_sources",
          "Source vintages each edition read, as of the edition: one row per edition x source x vintage.",
          [F["edition"], F["source"], F["vintage"],
           Field("release_year", "integer",
                 "Year the vintage was released (null: not edition-bound, e.g. a classification)"),
           Field("released_after_edition", "boolean",
                 "True when no vintage of the source was released by the edition and the oldest one was used "
                 "instead (METHODOLOGY §1)", nullable=False),
           Field("indicators", "varchar",
                 "Comma-separated indicators read from this vintage (null for lists: CAHRA, ILAB goods, UN M49)"),
           Field("rule", "varchar", "Why this vintage: newest released by the edition, oldest (none released), "
                                    "not edition-bound", nullable=False),
           Field("left_out", "varchar", "Indicators of this vintage left out of the edition by the coverage rule "
                 "(METHODOLOGY §2): 'indicator_id: N countries < min_countries M; ...'"),
           MV.but(description="Methodology version (METHODOLOGY §8c) of the country stage: the release months "
                              "choose the vintages")],
          primary_key=("edition", "source", "vintage")),
    Table("edition_status",
          "Per edition: whether every stored row was computed with the rules in force when the file was published "
          "(METHODOLOGY §8c). A row not current names the stale tables; `radar methodology --stale` lists them "
          "and `radar refresh` recomputes them.",
          [F["edition"],
           *(Field(f"{stage}_current", "boolean", f"Every {stage}-stage row of the edition carries the current "
                   f"{stage} version" + (" and no site was scored before its inputs last changed"
                                        if stage == "site" else ""), nullable=False)
             for stage in ("country", "inherent", "site")),
           Field("current", "boolean", "All three stages current", nullable=False),
           Field("stale", "varchar", "What is not current: 'table: N of M rows (reason); ...' (null: nothing)"),
           MV.but(description="The methodology version in force (site stage, which chains the country and "
                              "inherent stages) that the edition's rows were compared with")],
          primary_key=("edition",)),
    Table("coverage_report",
          "Coverage per edition x topic: countries observed / partly imputed / imputed / missing and the source "
          "vintages used.",
          [F["edition"], F["topic"].but(description="Country-risk topic (METHODOLOGY §2)"),
           Field("n_countries", "integer", "Countries in the edition's universe", nullable=False),
           Field("observed", "integer",
                 "Countries whose topic score uses only observed values (no indicator imputed)", nullable=False),
           Field("partly_imputed", "integer",
                 "Countries with some of the topic's indicators imputed from region means", nullable=False),
           Field("imputed", "integer", "Countries with every indicator of the topic imputed", nullable=False),
           Field("missing", "integer", "Countries without a topic score (the topic had no data in the edition)",
                 nullable=False),
           Field("share_observed", "double", "observed / n_countries", range=(0.0, 1.0)),
           Field("indicators", "integer", "Indicators the registry lists for the topic", nullable=False),
           Field("indicators_with_data", "integer", "Of those, indicators with at least one observed country",
                 nullable=False),
           Field("indicator_observed", "varchar", "Countries observed per indicator: 'indicator_id N; ...'",
                 nullable=False),
           Field("vintages", "varchar", "Publisher vintages the topic's values came from: 'source vintage; ...' "
                                        "(null: no data); '(released after the edition)' marks a vintage newer "
                                        "than the edition"),
           Field("data_year_min", "integer", "Earliest data year among the topic's observations in the edition "
                                             "window"),
           Field("data_year_max", "integer", "Latest data year among the topic's observations in the edition "
                                             "window"),
           Field("indicators_left_out", "varchar", "Indicators of the topic left out of the edition by the "
                 "coverage rule (METHODOLOGY §2): 'indicator_id observed for N countries < min_countries M; ...'"),
           MV],
          primary_key=("edition", "topic")),
    Table("country_picture",
          "The country picture in one view, latest edition: one row per country x topic with score, confidence, "
          "how each indicator was filled (METHODOLOGY §2.3) and the values used.",
          [F["edition"], F["iso3"], F["country_name"], F["region"], F["subregion"],
           Field("income_group", "varchar", "World Bank income group the edition used (null: unclassified)"),
           F["topic"], Field("pillar", "varchar", "Pillar of the topic", isin=TOPIC_PILLARS),
           F["score"].but(description="Country topic risk, 1 (low) - 6 (high)", range=(1.0, 6.0)),
           TOPIC_CONFIDENCE, F["n_indicators"], F["n_imputed"],
           Field("methods", "varchar", "How the topic's indicator values were obtained: direct (observed) and/or "
                 "the gap fills used (peer_subregion_mean, peer_region_mean, income_group_mean, subregion_mean, "
                 "region_mean, world_mean)"),
           Field("indicators", "varchar", "Per indicator: 'id direct YEAR = value -> score' or "
                 "'id METHOD of DONORS -> score'"),
           Field("thin", "boolean", "Confidence below 0.5: the topic rests mostly on imputed values"),
           MV],
          primary_key=("iso3", "topic")),
    Table("site_scores_latest",
          "Each site's score in the latest edition it was scored for (same columns as site_scores_history).",
          _site_score_columns, primary_key=("site_id",)),
    Table("site_scores_history",
          "Every site score per edition, with names and the change since the site's previous edition.",
          _site_score_columns, primary_key=("edition", "site_id")),
    Table("site_score_factors",
          "Explanation of every site score: one row per site x edition x factor (METHODOLOGY §8.6).",
          [F["edition"], F["site_id"], F["kind"], F["item"], F["detail"], F["points"], MV]),
    Table("site_remediation",
          "What would lower a site's score, per edition: per site above the lowest category, the "
          "fewest actions that move its calculated category down (applicable controls not yet in place, "
          "METHODOLOGY §7; open critical/major findings to close, §8), in order, each with the score after it "
          "(sql/sites/site_remediation.sql).",
          SITE_REMEDIATION,
          primary_key=("edition", "site_id", "step")),
    Table("site_uncertainty",
          "How sure each site's category is, per edition (issue 25 item 2): the share of the seeded draws of its "
          "country's topic scores (publishers' standard errors, imputation donors' spread) in which the site is "
          "Low, Medium or High, and the share that keeps its calculated category (sql/sites/site_uncertainty.sql).",
          SITE_UNCERTAINTY, primary_key=("edition", "site_id")),
    Table("country_topic_uncertainty",
          "How sure each country topic score is, per edition (issue 25 item 2): the 90 % interval of the seeded "
          "simulation and where its uncertainty comes from (radar_pipeline/country_risk/uncertainty.py).",
          COUNTRY_TOPIC_UNCERTAINTY, primary_key=("edition", "iso3", "topic")),
    Table("site_nonconformities", "Audit findings (non-conformities) of each site's latest accepted record.",
          [F["site_id"], F["site_name"].but(description="Site name"), SITE_ISO3, F["nc_id"], F["severity"],
           F["status"], F["raised_on"], F["closed_on"]],
          unversioned="the audit findings as the site's file reports them: no rule shapes them (their effect on "
                      "the score is in site_score_factors, which carries the version)"),
    Table("site_rejects", "Site file lines rejected at intake, with the reason.",
          [F["file"].but(description="Site file name"), F["file_sha256"], F["line"],
           F["site_id"].but(description="Site id on the line, when readable", nullable=True, regex=None),
           Field("field", "varchar", "Field that failed validation"),
           F["reason"].but(description="Why the line was rejected"), F["received_at"], F["resolved_at"],
           MV.but(description="Methodology version (METHODOLOGY §8c) of the site stage whose rules judged the line "
                              "(null: rejected before the version was recorded)")]),
    Table("benchmark_agreement",
          "Benchmark agreement per edition x topic x benchmark (rules/benchmarks.csv): Spearman rho between the "
          "country topic score (overall: mean country risk) and an independent reference over the countries having "
          "both, with a bootstrap 95 % interval. Agreement in the expected direction = rho (positive) or -rho "
          "(negative), expected at least min_rho.",
          [*BENCHMARK_AGREEMENT_FIELDS, BENCHMARK_MV], primary_key=("edition", "topic", "benchmark")),
    Table("benchmark_disagreements",
          "Per edition x topic x benchmark the 10 countries with the largest gap between their topic-score rank and "
          "their benchmark rank, with the topic's indicator values and how each was obtained (where to look first "
          "when a benchmark disagrees).",
          [*BENCHMARK_DISAGREEMENT_FIELDS, BENCHMARK_MV], primary_key=("edition", "topic", "benchmark", "iso3")),
    Table("data_dictionary", "This dictionary: one row per published table x column.",
          [F["table_name"], Field("table_description", "varchar", "What one row of the table is"),
           Field("ordinal_position", "integer", "Column position (1-based)", nullable=False),
           Field("column_name", "varchar", "Column", nullable=False),
           Field("data_type", "varchar", "DuckDB type", nullable=False),
           Field("nullable", "boolean", "Whether the column may be null", nullable=False),
           Field("description", "varchar", "What the column means", nullable=False)],
          primary_key=("table_name", "column_name"),
          unversioned="describes this file's tables and columns: no rule shapes it"),
    Table("publish_info", "Provenance of the snapshot: one row per published table with its row count.",
          [Field("snapshot_id", "varchar", "Id of this published snapshot (UTC time + random suffix)",
                 nullable=False),
           Field("scope", "varchar", "'all' for the main file, 'buyer:<buyer_id>' for a buyer's file",
                 nullable=False),
           Field("published_at", "timestamp", "When the snapshot was built (UTC)", nullable=False),
           Field("source_warehouse", "varchar", "Path of the pipeline warehouse it was built from", nullable=False),
           F["table_name"], Field("row_count", "bigint", "Rows in that table in this snapshot", nullable=False)],
          primary_key=("table_name",),
          unversioned="provenance of the snapshot (when, from where, row counts): each table's rows carry their "
                      "own version, and edition_status says whether they are current"),
]

PUBLISHED: dict[str, Table] = {t.name: t for t in TABLES}
