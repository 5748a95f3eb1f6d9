-- country_risk: topic score 1-6 per edition x country x topic (long form) with country
-- names/regions and the topic's pillar.
-- Inputs: country_topic_risk, countries, topics (rules/topics.csv). Output: one row per (edition, iso3, topic).

with

country_topic_risk as (
    select * from country_topic_risk
),

countries as (
    select iso3, name, region, subregion from countries
),

pillars as (
    -- rules/topics.csv (temp table topics, radar_pipeline/rules/rule_sql.py)
    select topic, pillar from topics
),

final as (
    select
        r.edition,
        r.iso3,
        c.name as country_name,
        c.region,
        c.subregion,
        r.topic,
        p.pillar,
        r.score,
        r.n_indicators,
        r.n_imputed,
        r.confidence,
        r.missing_topics,
        r.methodology_version
    from country_topic_risk as r
    left join countries as c using (iso3)
    left join pillars as p using (topic)
)

select * from final
order by edition, iso3, topic
