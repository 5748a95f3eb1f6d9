-- coverage_report: per edition x topic, how many of the edition's countries have the topic
-- observed, partly imputed, fully imputed or missing, which indicators carried data, and the
-- publisher vintages the values came from — so a methodology owner sees thin topics at a glance.
-- Inputs: edition_countries, indicator_registry, indicator_scores, country_topic_risk,
--         indicator_observations, edition_sources, indicator_coverage. Parameter: $edition.
-- Output: one row per (edition, topic) for every topic of the registry, data or not.

with

-- import CTEs ----------------------------------------------------------------------------

universe as (
    select iso3 from edition_countries where edition = $edition
),

registry as (
    select indicator_id, topic from indicator_registry
),

topic_risk as (
    select iso3, topic, n_indicators, n_imputed from country_topic_risk where edition = $edition
),

scores as (
    select indicator_id, iso3, imputed from indicator_scores where edition = $edition
),

observations as (
    select source, indicator_id, iso3, data_year, vintage from indicator_observations where edition = $edition
),

sources_read as (
    select source, vintage, released_after_edition from edition_sources where edition = $edition
),

coverage_rule as (
    select indicator_id, topic, reason from indicator_coverage where edition = $edition and not included
),

-- logic CTEs -----------------------------------------------------------------------------

topics as (
    select distinct topic from registry
),

universe_size as (
    select count(*) as n_countries from universe
),

-- a country is "observed" on a topic when none of the topic's indicator scores is imputed,
-- "imputed" when all of them are, "partly imputed" in between; no row = missing
country_counts as (
    select
        t.topic,
        count(r.iso3) filter (where r.n_imputed = 0) as observed,
        count(r.iso3) filter (where r.n_imputed > 0 and r.n_imputed < r.n_indicators) as partly_imputed,
        count(r.iso3) filter (where r.n_imputed > 0 and r.n_imputed = r.n_indicators) as imputed,
        count(r.iso3) as with_score
    from topics as t
    left join topic_risk as r
        on r.topic = t.topic and r.iso3 in (select iso3 from universe)
    group by t.topic
),

per_indicator as (
    select g.topic, g.indicator_id, count(s.iso3) filter (where not s.imputed) as observed
    from registry as g
    left join scores as s using (indicator_id)
    group by g.topic, g.indicator_id
),

indicator_counts as (
    select
        topic,
        count(*)::integer as indicators,
        (count(*) filter (where observed > 0))::integer as indicators_with_data,
        string_agg(indicator_id || ' ' || observed, '; ' order by indicator_id) as indicator_observed
    from per_indicator
    group by topic
),

vintages_used as (
    select
        g.topic,
        o.source,
        o.vintage,
        min(o.data_year) as year_min,
        max(o.data_year) as year_max,
        coalesce(bool_or(sr.released_after_edition), false) as released_after
    from observations as o
    join registry as g using (indicator_id)
    left join sources_read as sr on sr.source = o.source and sr.vintage = o.vintage
    group by g.topic, o.source, o.vintage
),

vintage_text as (
    select
        topic,
        string_agg(source || ' ' || vintage
                   || case when released_after then ' (released after the edition)' else '' end,
                   '; ' order by source, vintage) as vintages,
        min(year_min) as data_year_min,
        max(year_max) as data_year_max
    from vintages_used
    group by topic
),

left_out as (
    select topic, string_agg(indicator_id || ' ' || reason, '; ' order by indicator_id) as indicators_left_out
    from coverage_rule
    group by topic
),

final as (
    select
        $edition::integer as edition,
        c.topic,
        u.n_countries::integer as n_countries,
        c.observed::integer as observed,
        c.partly_imputed::integer as partly_imputed,
        c.imputed::integer as imputed,
        (u.n_countries - c.with_score)::integer as missing,
        i.indicators,
        i.indicators_with_data,
        i.indicator_observed,
        coalesce(v.vintages, '') as vintages,
        v.data_year_min::integer as data_year_min,
        v.data_year_max::integer as data_year_max,
        l.indicators_left_out
    from country_counts as c
    cross join universe_size as u
    join indicator_counts as i using (topic)
    left join vintage_text as v using (topic)
    left join left_out as l using (topic)
)

select * from final
order by topic
