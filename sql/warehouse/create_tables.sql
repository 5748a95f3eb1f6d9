-- Warehouse tables. Created if missing; every write is a delete-then-insert
-- of one slice (edition, or edition + source), so reruns are idempotent.

-- Reference, per edition: the country universe (METHODOLOGY §1) the edition was built on — UN M49
-- areas with a region from the M49 vintage of that edition, plus rules/universe_additions.csv
-- (Taiwan, Kosovo). Keyed by edition so refreshing one edition never changes another.
create table if not exists edition_countries (
    edition integer not null,
    iso3 varchar not null,
    iso2 varchar,
    m49 varchar,                        -- null for TWN/XKX, which M49 does not list
    name varchar,
    region varchar,
    subregion varchar,
    intermediate_region varchar,
    ldc boolean,
    lldc boolean,
    sids boolean,
    m49_vintage varchar not null,       -- the un_m49 vintage folder the edition read
    primary key (edition, iso3)
);

-- Every country of any edition's universe, described as in the newest edition that has it:
-- the dimension site intake, joins by iso3 and the published `countries` table use.
create view if not exists countries as
select iso3, iso2, m49, name, region, subregion, intermediate_region, ldc, lldc, sids
from edition_countries
qualify row_number() over (partition by iso3 order by edition desc) = 1;

-- Reference: the indicator registry (rules/indicators.csv, one row per indicator).
create table if not exists indicator_registry (
    indicator_id varchar primary key,
    topic varchar not null,
    source varchar not null,
    direction varchar not null,
    unit varchar,
    note varchar
);

-- Provenance of every publisher file a refresh read.
create table if not exists source_files (
    edition integer not null,
    source varchar not null,
    vintage varchar not null,
    file varchar not null,
    url varchar,
    sha256 varchar not null,
    bytes bigint,
    fetched_at varchar
);

-- METHODOLOGY §1 "as of the edition": every source vintage an edition read, per (edition, source);
-- released_after_edition = true when no vintage was released by the edition and the oldest was used.
create table if not exists edition_sources (
    edition integer not null,
    source varchar not null,
    vintage varchar not null,
    released_after_edition boolean not null,
    release_year integer,               -- null: not edition-bound (a classification such as ISIC Rev.4)
    indicators varchar,                 -- indicators read from this vintage ('' for lists: CAHRA, ILAB, M49)
    rule varchar not null,              -- why this vintage (released by the edition / oldest / not edition-bound)
    primary key (edition, source, vintage)
);

-- Rows read from a publisher but left out, with the reason (aggregates, areas outside M49).
create table if not exists source_notes (
    edition integer not null,
    source varchar not null,
    vintage varchar,
    file varchar,
    row_ref varchar,
    country varchar,
    code varchar,
    reason varchar not null
);

-- Every observation inside the edition's window (Y-5..Y), one per indicator x country x year.
create table if not exists indicator_observations (
    edition integer not null,
    source varchar not null,
    indicator_id varchar not null,
    iso3 varchar not null,
    data_year integer not null,
    value double not null,
    vintage varchar not null,
    file varchar not null,
    row_ref varchar,
    primary key (edition, indicator_id, iso3, data_year)
);

-- Normalised (1-6) latest value per indicator x country, gaps filled by region means.
create table if not exists indicator_scores (
    edition integer not null,
    indicator_id varchar not null,
    iso3 varchar not null,
    value double,
    data_year integer,
    score double not null,
    imputed boolean not null,
    method varchar not null,
    imputed_from varchar,
    methodology_version varchar,           -- METHODOLOGY §8c: fingerprint of the rules (radar methodology)
    primary key (edition, indicator_id, iso3)
);

-- Topic score (1-6) per country: mean of the topic's indicator scores.
create table if not exists country_topic_risk (
    edition integer not null,
    iso3 varchar not null,
    topic varchar not null,
    score double not null,
    n_indicators integer not null,
    n_imputed integer not null,
    -- METHODOLOGY §8a: mean over the topic's indicators of 1 observed / 0.5 region mean / 0 world mean
    confidence double not null,
    missing_topics varchar not null,
    methodology_version varchar,           -- METHODOLOGY §8c: fingerprint of the rules (radar methodology)
    primary key (edition, iso3, topic)
);

-- Reference: ISIC Rev.4 (sections, divisions, groups, classes) with parents.
create table if not exists isic (
    code varchar primary key,
    level varchar not null,
    title varchar not null,
    section varchar not null,
    division varchar,
    grp varchar,
    is_primary_producer boolean not null
);

-- Rule table: sector weight 0-4 per (section | division, topic) — rules/sector_weights.csv.
create table if not exists sector_weights (
    isic_code varchar not null,
    level varchar not null,
    topic varchar not null,
    weight tinyint not null,
    rationale varchar,
    evidence varchar,
    primary key (isic_code, topic)
);

-- Rule table: ISIC codes covered by the Forced Labour Index (uplift 1 on forced_labour).
create table if not exists fli_covered (
    isic_code varchar not null,
    level varchar not null,
    note varchar
);

-- High-risk goods hits per country x ISIC class (ILAB, CAHRA, deforestation).
create table if not exists high_risk_goods (
    edition integer not null,
    iso3 varchar not null,
    isic_class varchar not null,
    good varchar not null,
    risk_type varchar not null,
    source varchar not null
);

-- Goods that could not be placed on an ISIC class (reported, never dropped silently).
create table if not exists hrg_unmapped (
    edition integer not null,
    good varchar not null,
    reason varchar not null
);

create table if not exists hrg_uplift (
    edition integer not null,
    iso3 varchar not null,
    isic_class varchar not null,
    topic varchar not null,
    uplift double not null,
    methodology_version varchar           -- METHODOLOGY §8c: fingerprint of the rules (radar methodology)
);

create table if not exists sector_weighted_country_risk (
    edition integer not null,
    iso3 varchar not null,
    isic_code varchar not null,
    level varchar not null,
    topic varchar not null,
    country_score double not null,
    sector_weight double not null,
    methodology_version varchar           -- METHODOLOGY §8c: fingerprint of the rules (radar methodology)
);

create table if not exists inherent_risk (
    edition integer not null,
    iso3 varchar not null,
    isic_class varchar not null,
    topic varchar not null,
    country_score double not null,
    sector_weight double not null,
    hrg_uplift double not null,
    score double not null,
    methodology_version varchar           -- METHODOLOGY §8c: fingerprint of the rules (radar methodology)
);

create table if not exists inherent_risk_overall (
    edition integer not null,
    iso3 varchar not null,
    isic_class varchar not null,
    score double not null,
    labour_standards double,
    health_safety double,
    business_ethics double,
    environment double,
    is_primary_producer boolean not null,
    missing_topics varchar not null,
    confidence double,                     -- METHODOLOGY §8a: mean of the 14 topic confidences (missing 0)
    confidence_label varchar,              -- high >= 0.8, medium >= 0.5, else low
    methodology_version varchar,           -- METHODOLOGY §8c: fingerprint of the rules (radar methodology)
    primary key (edition, iso3, isic_class)
);

-- Sites: latest accepted state of every site (SITE_INPUT.md), one row per site.
create table if not exists sites (
    site_id varchar primary key,
    site_name varchar,
    iso3 varchar not null,
    isic_code varchar not null,
    isic_level varchar not null,
    isic_class varchar,
    source_file varchar not null,
    source_line bigint not null,
    content_hash varchar not null,
    updated_at timestamp not null
);

create table if not exists site_saq (
    site_id varchar not null,
    field varchar not null,
    value_num double,
    value_bool boolean,
    value_text varchar
);

create table if not exists site_controls (
    site_id varchar not null,
    control_id varchar not null
);

create table if not exists site_nonconformities (
    site_id varchar not null,
    nc_id varchar not null,
    severity varchar not null,
    status varchar not null,
    raised_on date,
    closed_on date
);

-- Every accepted version of a site (new or changed), so earlier answers stay traceable.
create table if not exists site_history (
    site_id varchar not null,
    content_hash varchar not null,
    change varchar not null,            -- 'new' | 'changed'
    source_file varchar not null,
    source_line bigint not null,
    received_at timestamp not null
);

-- Rejected lines with the reason; replaced per file content (a re-send does not duplicate).
create table if not exists site_rejects (
    file varchar not null,
    file_sha256 varchar not null,
    line bigint,
    site_id varchar,
    field varchar,
    reason varchar not null,
    received_at timestamp not null
);

-- Intake log: which file contents were processed (the sensor's memory survives restarts here too).
create table if not exists site_intake_files (
    file varchar not null,
    file_sha256 varchar not null,
    processed_at timestamp not null,
    n_valid integer not null,
    n_rejected integer not null,
    n_new integer not null,
    n_changed integer not null,
    n_unchanged integer not null
);

-- One score per site and edition with every intermediate (METHODOLOGY §6-§9).
create table if not exists site_scores (
    edition integer not null,
    site_id varchar not null,
    iso3 varchar,
    isic_code varchar,
    isic_class varchar,
    inherent double,
    labour_standards double,
    health_safety double,
    business_ethics double,
    environment double,
    site_characteristics double,
    raw_points double,
    total_available double,
    n_unanswered bigint,
    management_controls double,
    mc_rounded double,
    open_critical bigint,
    open_major bigint,
    base double,
    adjustment varchar,
    final_score double,
    category_calculated varchar,        -- §8.5: category of final_score
    category varchar,                   -- §8b: an override's category where one is in force, else calculated
    override_reason varchar,
    override_author varchar,
    is_primary_producer boolean,
    inherent_only boolean,
    missing_topics varchar,
    inherent_confidence double,         -- §8a: confidence of the site's inherent risk
    saq_completeness double,            -- §8a: answered SAQ factors / all factors (0 without an SAQ)
    confidence double,                  -- §8a: 0.5 x inherent_confidence + 0.5 x saq_completeness
    confidence_label varchar,           -- high >= 0.8, medium >= 0.5, else low
    methodology_version varchar,
    scored_at timestamp,
    primary key (edition, site_id)
);

-- The explanation: one row per site x factor / control / inherent part / adjustment.
create table if not exists site_score_factors (
    edition integer not null,
    site_id varchar not null,
    kind varchar not null,
    item varchar not null,
    detail varchar,
    points double,
    methodology_version varchar           -- METHODOLOGY §8c: fingerprint of the rules (radar methodology)
);

-- Buyers: which sites each buyer may see in its published file (RADAR_BUYERS_INBOX, *.csv / *.jsonl
-- with buyer_id, site_id). Replaced as a whole from the folder at every publish.
create table if not exists buyer_sites (
    buyer_id varchar not null,
    site_id varchar not null,
    source_file varchar not null,
    source_line bigint not null,
    primary key (buyer_id, site_id)
);

-- Buyer file rows left out, with the reason (bad id, missing column, unreadable line).
create table if not exists buyer_site_rejects (
    file varchar not null,
    line bigint,
    buyer_id varchar,
    site_id varchar,
    reason varchar not null
);

-- Every scoring run over a site partition range, with its outcome. With
-- DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1 (the PostgreSQL setting for
-- large site counts) Dagster no longer marks a failed run's partitions failed,
-- so the pipeline records it here itself.
create table if not exists site_scoring_runs (
    run_id varchar not null,
    edition integer,
    first_site varchar,
    last_site varchar,
    n_sites integer not null,
    status varchar not null,            -- 'success' | 'failure'
    error varchar,
    started_at timestamp not null,
    finished_at timestamp not null
);

-- Warehouses created before these columns existed get them here (create table if not exists
-- leaves an existing table alone); rows written before stay null until their slice is rebuilt.
alter table indicator_scores add column if not exists methodology_version varchar;
alter table country_topic_risk add column if not exists methodology_version varchar;
alter table country_topic_risk add column if not exists confidence double;  -- §8a: topic confidence
alter table hrg_uplift add column if not exists methodology_version varchar;
alter table sector_weighted_country_risk add column if not exists methodology_version varchar;
alter table inherent_risk add column if not exists methodology_version varchar;
alter table inherent_risk_overall add column if not exists confidence double;
alter table inherent_risk_overall add column if not exists confidence_label varchar;
alter table inherent_risk_overall add column if not exists methodology_version varchar;
alter table site_score_factors add column if not exists methodology_version varchar;
-- a reject stays for the record; resolved_at is set when a later file accepts the same site
alter table site_rejects add column if not exists resolved_at timestamp;
alter table site_scores add column if not exists category_calculated varchar;
alter table site_scores add column if not exists override_reason varchar;
alter table site_scores add column if not exists override_author varchar;
alter table site_scores add column if not exists inherent_confidence double;
alter table site_scores add column if not exists saq_completeness double;
alter table site_scores add column if not exists confidence double;
alter table site_scores add column if not exists confidence_label varchar;

-- Coverage per edition x topic (radar_pipeline/country_risk/coverage.py): countries observed /
-- partly imputed / imputed / missing, indicators with data, and the publisher vintages used.
create table if not exists coverage_report (
    edition integer not null,
    topic varchar not null,
    n_countries integer not null,           -- the edition's country universe
    observed integer not null,              -- every indicator of the topic observed (none imputed)
    partly_imputed integer not null,        -- some of the topic's indicators imputed from region means
    imputed integer not null,               -- all of the topic's indicators imputed
    missing integer not null,               -- no score (topic without data in the edition)
    indicators integer not null,            -- indicators the registry lists for the topic
    indicators_with_data integer not null,  -- of which at least one country has an observed value
    indicator_observed varchar not null,    -- 'indicator_id N; ...' countries observed per indicator
    vintages varchar not null,              -- 'source vintage; ...' the values came from
    data_year_min integer,
    data_year_max integer,
    methodology_version varchar,            -- METHODOLOGY §8c: fingerprint of the country-risk rules
    primary key (edition, topic)
);
