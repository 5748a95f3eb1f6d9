"""The warehouse tables, declared once: the DDL (radar_pipeline/platform/warehouse.py creates them from
here), the pandera schemas of radar_pipeline/metadata/schemas.py and the `dagster/column_schema`
metadata of the assets all come from these declarations.

Every write is a delete-then-insert of one slice (edition, or edition + source), so reruns
are idempotent. Order = creation order (a view after the tables it reads).
`site_saq` (one row per site, columns from rules/saq_fields.csv) is still created by
sql/warehouse/create_tables.sql.
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
from radar_pipeline.rules.methodology import DIRECTIONS, IMPUTATION_METHODS, INCOME_GROUPS

MV = F["methodology_version"]

_COUNTRY = [F["iso2"], F["m49"], F["country_name"].but(name="name"), F["region"], F["subregion"],
            F["intermediate_region"], F["ldc"], F["lldc"], F["sids"]]

INHERENT_MV = MV.but(description="Methodology version (METHODOLOGY §8c) of the inherent stage")
# why the site's own tables carry no methodology_version (METHODOLOGY §8c)
SITE_DATA = "the site's own data as accepted at intake (SITE_INPUT.md): no scoring rule shapes it"

TABLES: list[Table] = [
    Table("edition_countries",
          "Reference, per edition: the country universe (METHODOLOGY §1) the edition was built on — UN M49 "
          "areas with a region from the M49 vintage of that edition, plus rules/universe_additions.csv "
          "(Taiwan, Kosovo). Keyed by edition so refreshing one edition never changes another.",
          [F["edition"], F["iso3"], *_COUNTRY,
           Field("m49_vintage", "varchar", "The un_m49 vintage folder the edition read", nullable=False),
           Field("income_group", "varchar", "World Bank income group (CLASS.xlsx of the vintage the edition may "
                 "read): low, lower_middle, upper_middle, high; null = unclassified (gap filling skips the "
                 "peer groups, METHODOLOGY §2.3)", isin=INCOME_GROUPS),
           Field("income_vintage", "varchar", "The worldbank_class vintage folder the income groups came from"),
           MV.but(description="Methodology version (METHODOLOGY §8c) of the country stage "
                              "(rules/universe_additions.csv and the release months decide the universe)")],
          primary_key=("edition", "iso3"), added_later=("income_group", "income_vintage", "methodology_version")),
    Table("countries",
          "Every country of any edition's universe, described as in the newest edition that has it: the "
          "dimension site intake, joins by iso3 and the published `countries` table use. The pandera schema "
          "checks the parsed M49 universe before it is written.",
          [F["iso3"].but(unique=True), *(f.but(nullable=False) if f.name in ("name", "region") else f
                                        for f in _COUNTRY),
           MV.but(description="Methodology version (METHODOLOGY §8c) of the edition the row describes")],
          view_sql="select iso3, iso2, m49, name, region, subregion, intermediate_region, ldc, lldc, sids,\n"
                   "    methodology_version\n"
                   "from edition_countries\n"
                   "qualify row_number() over (partition by iso3 order by edition desc) = 1"),
    Table("indicator_registry", "Reference: the indicator registry (rules/indicators.csv, one row per indicator).",
          [F["indicator_id"].but(regex=r"^[a-z0-9_]+$"), F["topic"],
           F["source"].but(description="Adapter that reads it (= mirror folder)"),
           Field("direction", "varchar", "higher_is_worse or higher_is_better", nullable=False, isin=DIRECTIONS),
           Field("unit", "varchar", "Unit of the source value"),
           Field("note", "varchar", "Free text"),
           Field("max_age_years", "integer", "Observations older than edition - max_age_years count as missing "
                 "(METHODOLOGY §1)", nullable=False, range=(0, 100)),
           Field("min_countries", "integer", "Countries observed in an edition below which the indicator takes "
                 "no part in it (METHODOLOGY §2 coverage)", nullable=False, range=(1, 1000)),
           Field("clip_min", "double", "Values below are set to it before normalising (null: none)"),
           Field("clip_max", "double", "Values above are set to it before normalising (null: none)"),
           MV.but(description="Methodology version (METHODOLOGY §8c) of the country stage that loaded it")],
          primary_key=("indicator_id",),
          added_later=("max_age_years", "min_countries", "clip_min", "clip_max", "methodology_version")),
    Table("source_files", "Provenance of every publisher file a refresh read.",
          [F["edition"], F["source"], F["vintage"], F["file"],
           Field("url", "varchar", "Where the file was downloaded from"),
           Field("sha256", "varchar", "SHA-256 of the file", nullable=False),
           Field("bytes", "bigint", "File size"),
           Field("fetched_at", "varchar", "When the file was downloaded")],
          unversioned="provenance of the publisher files a refresh read (URL, hash, size): no rule shapes it"),
    Table("edition_sources",
          "METHODOLOGY §1 \"as of the edition\": every source vintage an edition read, per (edition, source).",
          [F["edition"], F["source"], F["vintage"],
           Field("released_after_edition", "boolean",
                 "True when no vintage of the source was released by the edition and the oldest one was used "
                 "instead (METHODOLOGY §1)", nullable=False),
           Field("release_year", "integer",
                 "Year the vintage was released (null: not edition-bound, e.g. a classification)"),
           Field("indicators", "varchar",
                 "Comma-separated indicators read from this vintage (null for lists: CAHRA, ILAB goods, UN M49)"),
           Field("rule", "varchar", "Why this vintage: newest released by the edition, oldest (none released), "
                                    "not edition-bound", nullable=False),
           Field("left_out", "varchar", "Indicators of this vintage left out of the edition by the coverage rule "
                 "(METHODOLOGY §2): 'indicator_id: N countries < min_countries M; ...' (null: none)"),
           MV.but(description="Methodology version (METHODOLOGY §8c) of the country stage: the release months "
                              "(rules/sources.csv `released`) choose the vintages")],
          primary_key=("edition", "source", "vintage"), added_later=("left_out", "methodology_version")),
    Table("source_notes", "Rows read from a publisher but left out, with the reason (aggregates, areas outside M49).",
          [F["edition"], F["source"], F["vintage"].but(nullable=True), F["file"].but(nullable=True), F["row_ref"],
           Field("country", "varchar", "Country as the publisher wrote it"),
           Field("code", "varchar", "Country code as the publisher wrote it"),
           F["reason"]],
          unversioned="what an adapter left out of a publisher file as it parsed it (aggregates, areas outside "
                      "M49); the universe it was checked against is edition_countries, which carries the version"),
    Table("indicator_observations",
          "Every observation inside the edition's window (Y-5..Y), one per indicator x country x year.",
          [F["edition"], F["source"], F["indicator_id"], F["iso3"],
           F["data_year"].but(nullable=False, range=(1960, 2100)),
           F["value"].but(description="Value as published", nullable=False, finite=True),
           F["vintage"], F["file"], F["row_ref"]],
          primary_key=("edition", "indicator_id", "iso3", "data_year"),
          unversioned="the publishers' values as read; the rules that score them act in indicator_scores"),
    Table("indicator_scores",
          "Normalised (1-6) latest value per indicator x country, gaps filled by region means.",
          [F["edition"], F["indicator_id"], F["iso3"], F["value"], F["data_year"],
           F["score"].but(description="Normalised 1 (low) - 6 (high risk)", range=(1.0, 6.0)),
           Field("imputed", "boolean", "The score is a gap-fill (no observation in the window)", nullable=False),
           Field("method", "varchar", "direct (observed) or the gap fill used, peers first (METHODOLOGY §2.3): "
                 "peer_subregion_mean, peer_region_mean, income_group_mean, subregion_mean, region_mean, "
                 "world_mean", nullable=False, isin=IMPUTATION_METHODS),
           Field("imputed_from", "varchar", "Donor countries whose mean filled the gap (comma-separated ISO3)"),
           MV],
          primary_key=("edition", "indicator_id", "iso3"), added_later=("methodology_version",)),
    Table("indicator_coverage",
          "Coverage rule per edition x indicator (METHODOLOGY §2): countries observed in the indicator's window "
          "against min_countries; an indicator below it takes no part in the edition (no score, no imputation).",
          [F["edition"], F["indicator_id"], F["topic"],
           Field("n_countries", "integer", "Countries with an observed value in the window", nullable=False),
           Field("min_countries", "integer", "The threshold applied (rules/indicators.csv, or lower where "
                 "the run caps it: the synthetic sample mirror)", nullable=False),
           Field("included", "boolean", "The indicator takes part in the edition", nullable=False),
           Field("reason", "varchar", "Why it is left out (null when included)"),
           MV],
          primary_key=("edition", "indicator_id")),
    Table("country_topic_risk", "Topic score (1-6) per country: mean of the topic's indicator scores.",
          [F["edition"], F["iso3"], F["topic"],
           F["score"].but(description="Country topic risk, 1 (low) - 6 (high): mean of the topic's indicator "
                                      "scores", range=(1.0, 6.0)),
           F["n_indicators"].but(ge=1), F["n_imputed"].but(ge=0), TOPIC_CONFIDENCE,
           F["missing_topics"].but(nullable=False), MV],
          primary_key=("edition", "iso3", "topic"), added_later=("methodology_version", "confidence")),
    Table("country_topic_uncertainty",
          "How sure each country topic score is (issue 25 item 2): the 90 % interval of a seeded simulation of the "
          "publishers' stated standard errors and the imputation donors' spread through §2.2-§2.4, and where the "
          "uncertainty comes from (radar_pipeline/country_risk/uncertainty.py). Beside the score, never in it.",
          COUNTRY_TOPIC_UNCERTAINTY, primary_key=("edition", "iso3", "topic")),
    Table("country_topic_draws",
          "The seeded draws behind country_topic_uncertainty: per country x topic x draw, the drawn topic score "
          "minus the reported one (0.0 where nothing is uncertain); sql/sites/site_uncertainty.sql carries them "
          "to every site.",
          [F["edition"], F["iso3"], F["topic"],
           Field("draw", "integer", "Draw number (0-based)", nullable=False, ge=0),
           Field("delta", "double", "Drawn topic score minus the reported topic score", nullable=False,
                 finite=True), MV.but(description="Methodology version (METHODOLOGY §8c) of the country stage")],
          # no primary key (one row per edition x country x topic x draw): 700k rows per edition, and
          # an index on them made writing the edition's draws 20x slower than the simulation
          ),
    Table("isic", "Reference: ISIC Rev.4 (sections, divisions, groups, classes) with parents.",
          [Field("code", "varchar", "ISIC code"), F["level"],
           Field("title", "varchar", "Title", nullable=False),
           Field("section", "varchar", "Section letter", nullable=False),
           Field("division", "varchar", "Division (2 digits)"),
           Field("grp", "varchar", "Group (3 digits)"),
           F["is_primary_producer"]],
          primary_key=("code",),
          unversioned="the ISIC Rev.4 classification as UNSD publishes it: no rule shapes it"),
    Table("sector_weights", "Rule table: sector weight 0-4 per (section | division, topic) — rules/sector_weights.csv.",
          [F["isic_code"].but(nullable=False), F["level"], F["topic"],
           Field("weight", "tinyint", "Weight 0-4", nullable=False),
           Field("rationale", "varchar", "Why this weight"),
           Field("evidence", "varchar", "Sources for it"), INHERENT_MV],
          primary_key=("isic_code", "topic"), added_later=("methodology_version",)),
    Table("fli_covered", "Rule table: ISIC codes covered by the Forced Labour Index (uplift 1 on forced_labour).",
          [F["isic_code"].but(nullable=False), F["level"], Field("note", "varchar", "Free text"), INHERENT_MV],
          added_later=("methodology_version",)),
    Table("high_risk_goods", "High-risk goods hits per country x ISIC class (ILAB, CAHRA, deforestation).",
          [F["edition"], F["iso3"], F["isic_class"].but(nullable=False),
           Field("good", "varchar", "Good as the list names it", nullable=False),
           Field("risk_type", "varchar", "child_labour, forced_labour, conflict or deforestation", nullable=False),
           F["source"], INHERENT_MV],
          added_later=("methodology_version",)),
    Table("hrg_unmapped", "Goods that could not be placed on an ISIC class (reported, never dropped silently).",
          [F["edition"], Field("good", "varchar", "Good as the list names it", nullable=False), F["reason"],
           INHERENT_MV],
          added_later=("methodology_version",)),
    Table("hrg_uplift", "High-risk-goods uplift per country x ISIC class x topic (METHODOLOGY §4).",
          [F["edition"], F["iso3"], F["isic_class"].but(nullable=False), F["topic"],
           Field("uplift", "double", "Uplift added to the sector weight", nullable=False), MV],
          added_later=("methodology_version",)),
    Table("sector_weighted_country_risk", "Country topic risk next to the sector weight of each ISIC code.",
          [F["edition"], F["iso3"], F["isic_code"].but(nullable=False), F["level"], F["topic"],
           F["country_score"], F["sector_weight"], MV],
          added_later=("methodology_version",)),
    Table("inherent_risk", "Inherent risk per edition x country x ISIC class x topic, with its three ingredients.",
          [F["edition"], F["iso3"], F["isic_class"].but(nullable=False), F["topic"], F["country_score"],
           F["sector_weight"], F["hrg_uplift"],
           F["score"].but(description="Inherent risk of the topic for this country x class (METHODOLOGY §5)"), MV],
          added_later=("methodology_version",)),
    Table("inherent_risk_overall",
          "Inherent risk per edition x country x ISIC class (one score, pillar means for display).",
          [F["edition"], F["iso3"], F["isic_class"].but(nullable=False),
           F["score"].but(description="Inherent risk: mean over the topics present"),
           F["labour_standards"], F["health_safety"], F["business_ethics"], F["environment"],
           F["is_primary_producer"], F["missing_topics"].but(nullable=False), INHERENT_CONFIDENCE,
           F["confidence_label"], MV],
          primary_key=("edition", "iso3", "isic_class"),
          added_later=("confidence", "confidence_label", "methodology_version")),
    Table("sites", "Sites: latest accepted state of every site (SITE_INPUT.md), one row per site.",
          [F["site_id"], F["site_name"], F["iso3"].but(description="Country of the site (ISO3)"),
           F["isic_code"].but(nullable=False),
           Field("isic_level", "varchar", "ISIC level of isic_code", nullable=False),
           SITE_ISIC_CLASS, F["source_file"], F["source_line"], F["content_hash"],
           Field("updated_at", "timestamp", "When the accepted state last changed (UTC)", nullable=False)],
          primary_key=("site_id",), unversioned=SITE_DATA),
    Table("site_controls", "Management controls each site reported (SITE_INPUT.md).",
          [F["site_id"], Field("control_id", "varchar", "Control id (rules/controls.csv)", nullable=False)],
          unversioned=SITE_DATA),
    Table("site_nonconformities", "Audit findings (non-conformities) of each site's latest accepted record.",
          [F["site_id"], F["nc_id"], F["severity"], F["status"], F["raised_on"], F["closed_on"]],
          unversioned=SITE_DATA),
    Table("site_history", "Every accepted version of a site (new or changed), so earlier answers stay traceable.",
          [F["site_id"], F["content_hash"], Field("change", "varchar", "new or changed", nullable=False),
           F["source_file"], F["source_line"], F["received_at"]],
          unversioned=SITE_DATA),
    Table("site_rejects", "Rejected lines with the reason; replaced per file content (a re-send does not "
                          "duplicate). A reject stays for the record; resolved_at is set when a later file "
                          "accepts the same site.",
          [F["file"].but(description="Site file name"), F["file_sha256"], F["line"],
           F["site_id"].but(description="Site id on the line, when readable", nullable=True, regex=None),
           Field("field", "varchar", "Field that failed validation"),
           F["reason"].but(description="Why the line was rejected"), F["received_at"], F["resolved_at"],
           MV.but(description="Methodology version (METHODOLOGY §8c) of the site stage whose rules judged the "
                              "line (rules/saq_fields.csv, controls.csv)")],
          added_later=("resolved_at", "methodology_version")),
    Table("site_intake_files",
          "Intake log: which file contents were processed (the sensor's memory survives restarts here too).",
          [F["file"].but(description="Site file name"), F["file_sha256"],
           Field("processed_at", "timestamp", "When it was processed (UTC)", nullable=False),
           *(Field(n, "integer", d, nullable=False) for n, d in (
               ("n_valid", "Lines accepted"), ("n_rejected", "Lines rejected"), ("n_new", "New sites"),
               ("n_changed", "Changed sites"), ("n_unchanged", "Sites sent again unchanged")))],
          unversioned="the intake log (which file contents were processed): no rule shapes it"),
    Table("site_scores", "One score per site and edition with every intermediate (METHODOLOGY §6-§9).",
          [F["edition"], F["site_id"], SITE_ISO3, F["isic_code"], SITE_ISIC_CLASS, F["inherent"], *SITE_PILLARS,
           F["site_characteristics"], F["raw_points"], F["total_available"], F["n_unanswered"],
           F["management_controls"], F["mc_rounded"], F["open_critical"], F["open_major"], F["base"],
           F["adjustment"], F["final_score"], F["category_calculated"], F["category"], F["override_reason"],
           F["override_author"], SITE_IS_PRIMARY_PRODUCER, F["inherent_only"], F["missing_topics"],
           F["inherent_confidence"], F["saq_completeness"], SITE_CONFIDENCE, F["confidence_label"],
           MV.but(description="Methodology version (METHODOLOGY §8c) of the site stage"), F["scored_at"]],
          # not indexed: with DuckDB's key index, deleting 50k rescored sites' rows took 1.1 s on a quiet
          # machine and 10.7 s under load, against 0.2 s without (bench/README.md)
          primary_key=("edition", "site_id"), key_indexed=False,
          added_later=("category_calculated", "override_reason", "override_author", "inherent_confidence",
                       "saq_completeness", "confidence", "confidence_label")),
    Table("site_score_factors",
          "The explanation: one row per site x factor / control / inherent part / adjustment.",
          [F["edition"], F["site_id"], F["kind"], F["item"], F["detail"], F["points"], MV],
          added_later=("methodology_version",)),
    Table("site_remediation",
          "What would lower a site's score: per site above the lowest category, the fewest actions that move its "
          "calculated category down (applicable controls not yet in place, METHODOLOGY §7; open critical/major "
          "findings to close, §8), in order, each with the score after it (sql/sites/site_remediation.sql).",
          # not indexed: with DuckDB's key index, deleting 50k rescored sites' rows took 11 s of a 10 s scoring
          SITE_REMEDIATION,
          primary_key=("edition", "site_id", "step"), key_indexed=False),
    Table("site_uncertainty",
          "How sure each site's category is (issue 25 item 2): the share of the seeded draws of its country's topic "
          "scores, carried through inherent risk (§5) and the site score (§8), in each category, and the share "
          "that keeps the calculated category (sql/sites/site_uncertainty.sql). Beside the score, never in it.",
          # not indexed: DuckDB's key index made deleting and re-inserting 100k rescored sites' rows 25x slower
          SITE_UNCERTAINTY, primary_key=("edition", "site_id"), key_indexed=False),
    Table("buyer_sites",
          "Buyers: which sites each buyer may see in its published file (RADAR_BUYERS_INBOX, *.csv / *.jsonl "
          "with buyer_id, site_id). Replaced as a whole from the folder at every publish. One row per "
          "(buyer_id, site_id), the first line that lists it.",
          [F["buyer_id"], F["site_id"].but(regex=None), F["source_file"], F["source_line"]],
          # kept unique by the loader (publish/buyers.py), not by an index: DuckDB holds a key index in
          # memory and cannot spill it (1.6-1.8 GiB for a 100 MB list)
          primary_key=("buyer_id", "site_id"), key_indexed=False,
          unversioned="the buyers' access lists as sent: no rule shapes them"),
    Table("buyer_site_rejects", "Buyer file rows left out, with the reason (bad id, missing column, unreadable line).",
          [F["file"].but(description="Buyer file name"), F["line"], F["buyer_id"].but(nullable=True),
           F["site_id"].but(nullable=True, regex=None), F["reason"]],
          unversioned="rows of the buyers' access lists left out: no scoring rule judges them"),
    Table("side_input_loads",
          "What the pipeline last loaded from a side-file folder into the warehouse, with the folder's content "
          "hash: a publish whose buyers inbox has not changed since skips reading it again, in any process.",
          [Field("kind", "varchar", "What was loaded: buyers (RADAR_BUYERS_INBOX into buyer_sites)", nullable=False),
           Field("source", "varchar", "The folder it was loaded from (resolved path)", nullable=False),
           Field("sha256", "varchar", "sha256 over the names and bytes of the folder's list files at the load",
                 nullable=False),
           Field("files", "varchar", "The files read, as a JSON list of names", nullable=False),
           Field("n_rows", "bigint", "Rows the load stored", nullable=False),
           Field("loaded_at", "timestamp", "When it was loaded (UTC)", nullable=False)],
          primary_key=("kind", "source"), unversioned="a load log of files as sent: no rule shapes it"),
    Table("site_scoring_runs",
          "Every scoring run over a site partition range, with its outcome. With "
          "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1 (the PostgreSQL setting for large site counts) "
          "Dagster no longer marks a failed run's partitions failed, so the pipeline records it here itself.",
          [Field("run_id", "varchar", "Dagster run id", nullable=False), F["edition"].but(nullable=True),
           Field("first_site", "varchar", "First site id of the partition range"),
           Field("last_site", "varchar", "Last site id of the partition range"),
           Field("n_sites", "integer", "Sites in the range", nullable=False),
           Field("status", "varchar", "success or failure", nullable=False),
           Field("error", "varchar", "The failure, when it failed"),
           Field("started_at", "timestamp", "Run start (UTC)", nullable=False),
           Field("finished_at", "timestamp", "Run end (UTC)", nullable=False)],
          unversioned="a run log: no rule shapes it"),
    Table("edition_stages",
          "When each stage of an edition was last computed and with which rules (METHODOLOGY §8c): written by the "
          "last step of the stage (country_topic_risk, inherent_risk_overall). A site score older than its "
          "edition's inherent stage was computed from inputs that have changed since (radar methodology --stale).",
          [F["edition"], Field("stage", "varchar", "country or inherent", nullable=False, isin=("country", "inherent")),
           MV.but(description="Methodology version (METHODOLOGY §8c) the stage was computed with"),
           Field("computed_at", "timestamp", "When the stage's last step wrote its rows (UTC)", nullable=False)],
          primary_key=("edition", "stage")),
    Table("coverage_report",
          "Coverage per edition x topic: countries observed / partly imputed / imputed / missing and the source "
          "vintages used (radar_pipeline/country_risk/coverage.py).",
          [F["edition"], F["topic"].but(description="Country-risk topic (METHODOLOGY §2)"),
           Field("n_countries", "integer", "Countries in the edition's universe", nullable=False),
           Field("observed", "integer",
                 "Countries whose topic score uses only observed values (no indicator imputed)", nullable=False),
           Field("partly_imputed", "integer",
                 "Countries with some of the topic's indicators imputed from region means", nullable=False),
           Field("imputed", "integer", "Countries with every indicator of the topic imputed", nullable=False),
           Field("missing", "integer", "Countries without a topic score (the topic had no data in the edition)",
                 nullable=False),
           Field("indicators", "integer", "Indicators the registry lists for the topic", nullable=False),
           Field("indicators_with_data", "integer", "Of those, indicators with at least one observed country",
                 nullable=False),
           Field("indicator_observed", "varchar", "Countries observed per indicator: 'indicator_id N; ...'",
                 nullable=False),
           Field("vintages", "varchar", "Publisher vintages the topic's values came from: 'source vintage; ...' "
                                        "(null: no data); '(released after the edition)' marks a vintage newer "
                                        "than the edition", nullable=False),
           Field("data_year_min", "integer", "Earliest data year among the topic's observations in the edition "
                                             "window"),
           Field("data_year_max", "integer", "Latest data year among the topic's observations in the edition "
                                             "window"),
           Field("indicators_left_out", "varchar", "Indicators of the topic left out of the edition by the coverage "
                 "rule (METHODOLOGY §2): 'indicator_id observed for N countries < min_countries M; ...'"),
           MV.but(description="Methodology version (METHODOLOGY §8c): fingerprint of the country-risk rules")],
          primary_key=("edition", "topic"), added_later=("indicators_left_out",)),
    Table("benchmark_agreement",
          "Benchmark agreement per edition x topic x benchmark (rules/benchmarks.csv, issue 25): Spearman rho between "
          "the country topic score and an independent reference over the countries having both, with a bootstrap "
          "95 % interval (radar_pipeline/country_risk/benchmarks.py).",
          [*BENCHMARK_AGREEMENT_FIELDS, BENCHMARK_MV], primary_key=("edition", "topic", "benchmark")),
    Table("benchmark_disagreements",
          "Per edition x topic x benchmark the 10 countries with the largest gap between their topic-score rank and "
          "their benchmark rank, with the topic's indicator values and how each was obtained.",
          [*BENCHMARK_DISAGREEMENT_FIELDS, BENCHMARK_MV], primary_key=("edition", "topic", "benchmark", "iso3")),
]

WAREHOUSE: dict[str, Table] = {t.name: t for t in TABLES}
