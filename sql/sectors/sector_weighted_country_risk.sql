-- sector_weighted_country_risk: country topic score next to the sector weight for every
-- country x ISIC section and division x topic, METHODOLOGY §3 output.
-- Parameters: $edition. Inputs: country_topic_risk(edition, iso3, topic, score, n_indicators, n_imputed),
-- sector_weights(isic_code, level, topic, weight, ...), isic(code, level, title, section, division, grp, is_primary_producer).
-- Output: edition, iso3, isic_code, level, topic, country_score, sector_weight.

with

country_topic_risk as (
    select edition, iso3, topic, score
    from country_topic_risk
    where edition = $edition
),

isic_codes as (
    -- sections and divisions only: the levels the weight table is authored at
    select code, level, section
    from isic
    where level in ('section', 'division')
),

section_weights as (
    select isic_code as section, topic, weight
    from sector_weights
    where level = 'section'
),

division_weights as (
    select isic_code as division, topic, weight
    from sector_weights
    where level = 'division'
),

code_weights as (
    -- a division without its own row for a topic inherits its section's weight (§3 lookup)
    select
        c.code as isic_code,
        c.level,
        t.topic,
        case when c.level = 'division' then coalesce(dw.weight, sw.weight) else sw.weight end as sector_weight
    from isic_codes as c
    cross join (select distinct topic from country_topic_risk) as t
    left join section_weights as sw
      on sw.section = c.section and sw.topic = t.topic
    left join division_weights as dw
      on c.level = 'division' and dw.division = c.code and dw.topic = t.topic
),

final as (
    select
        r.edition,
        r.iso3,
        w.isic_code,
        w.level,
        r.topic,
        r.score as country_score,
        w.sector_weight
    from country_topic_risk as r
    join code_weights as w using (topic)
)

select * from final
order by iso3, level desc, isic_code, topic
