-- country_risk_wide: one row per edition x country, one column per topic (score 1-6,
-- null when the topic was missing in that edition), plus the row's mean over present topics.
-- Inputs: country_topic_risk, countries, topics (rules/topics.csv: one column per topic).

with

country_topic_risk as (
    select * from country_topic_risk
),

countries as (
    select iso3, name, region, subregion from countries
),

topic_scores as (
    -- one column per topic of rules/topics.csv (temp table topics, radar_pipeline/rules/rule_sql.py),
    -- in topic_order; a topic without rows in the edition is a null column
    pivot (select edition, iso3, topic, score from country_topic_risk)
    on topic in (select topic from topics order by topic_order)
    using max(score)
    group by edition, iso3
),

row_summary as (
    select
        edition,
        iso3,
        -- summed in topic order: a float sum in arrival order can differ in the last bit between runs
        avg(score order by topic) as mean_score,
        count(*)::integer as n_topics,
        -- METHODOLOGY §8a: a missing topic counts 0, so divide by all the topics.
        sum(confidence order by topic) / (select count(*) from topics) as confidence,
        any_value(missing_topics) as missing_topics,
        -- one refresh writes an edition's rows, so they share one version (§8c)
        any_value(methodology_version) as methodology_version
    from country_topic_risk
    group by edition, iso3
),

pivoted as (
    select
        t.*,
        s.* exclude (edition, iso3)
    from topic_scores as t
    inner join row_summary as s using (edition, iso3)
),

final as (
    select
        p.edition,
        p.iso3,
        c.name as country_name,
        c.region,
        c.subregion,
        p.* exclude (edition, iso3)
    from pivoted as p
    left join countries as c using (iso3)
)

select * from final
order by edition, iso3
