-- country_picture: the country picture in one view (issue 20) — for the latest edition, one row
-- per country x topic with its score, confidence, how each of its indicators was filled and
-- the values used, so a methodology owner sees at a glance which countries rest on thin data.
-- Inputs: country_topic_risk, indicator_scores, indicator_registry, edition_countries, topics.
-- Output: one row per (iso3, topic) of the latest edition.

with

topic_rows as (
    select * from country_topic_risk
),

indicator_rows as (
    select * from indicator_scores
),

registry as (
    select indicator_id, topic from indicator_registry
),

edition_geo as (
    select edition, iso3, name, region, subregion, income_group from edition_countries
),

pillars as (
    -- rules/topics.csv (temp table topics, radar_pipeline/rules/rule_sql.py)
    select topic, pillar from topics
),

latest as (
    select max(edition) as edition from topic_rows
),

per_indicator as (
    -- 'ti_cpi_score direct 2023 = 45 -> 3.53' / 'wb_poverty_umic peer_region_mean of DEU,FRA,NLD -> 1.35'
    select
        s.edition,
        s.iso3,
        g.topic,
        string_agg(
            s.indicator_id || ' '
            || case
                when s.method = 'direct'
                    then 'direct ' || s.data_year || ' = ' || cast(round(s.value, 4) as varchar)
                else s.method || ' of ' || coalesce(s.imputed_from, '')
            end
            || ' -> ' || cast(round(s.score, 2) as varchar),
            '; ' order by s.indicator_id
        ) as indicators,
        string_agg(distinct s.method, ', ' order by s.method) as methods
    from indicator_rows as s
    inner join registry as g using (indicator_id)
    where s.edition = (select l.edition from latest as l)
    group by s.edition, s.iso3, g.topic
),

final as (
    select
        r.edition,
        r.iso3,
        c.name as country_name,
        c.region,
        c.subregion,
        c.income_group,
        r.topic,
        p.pillar,
        r.score,
        r.confidence,
        r.n_indicators,
        r.n_imputed,
        i.methods,
        i.indicators,
        r.confidence < 0.5 as thin,
        r.methodology_version
    from topic_rows as r
    inner join latest as l on r.edition = l.edition
    left join edition_geo as c on c.edition = r.edition and c.iso3 = r.iso3
    left join pillars as p on p.topic = r.topic
    left join per_indicator as i on i.edition = r.edition and i.iso3 = r.iso3 and i.topic = r.topic
)

select * from final
order by iso3, topic
