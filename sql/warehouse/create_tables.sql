-- Warehouse tables. Created if missing; every write is a delete-then-insert
-- of one slice (edition, or edition + source), so reruns are idempotent.

-- Reference: UN M49 countries/areas that have a region (the country universe).
create table if not exists countries (
    iso3 varchar primary key,
    iso2 varchar,
    m49 varchar,
    name varchar,
    region varchar,
    subregion varchar,
    intermediate_region varchar,
    ldc boolean,
    lldc boolean,
    sids boolean
);

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
    missing_topics varchar not null,
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
    uplift double not null
);

create table if not exists sector_weighted_country_risk (
    edition integer not null,
    iso3 varchar not null,
    isic_code varchar not null,
    level varchar not null,
    topic varchar not null,
    country_score double not null,
    sector_weight double not null
);

create table if not exists inherent_risk (
    edition integer not null,
    iso3 varchar not null,
    isic_class varchar not null,
    topic varchar not null,
    country_score double not null,
    sector_weight double not null,
    hrg_uplift double not null,
    score double not null
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
    primary key (edition, iso3, isic_class)
);
