-- sector_weighted_country_risk: country topic score next to the sector weight for every
-- country x ISIC section and division x topic, METHODOLOGY §3 output.
-- Parameters: $edition. Inputs: country_topic_risk(edition, iso3, topic, score, n_indicators, n_imputed),
-- sector_weights(isic_code, level, topic, weight, ...),
-- isic(code, level, title, section, division, grp, is_primary_producer).
-- Output: edition, iso3, isic_code, level, topic, country_score, sector_weight.

with

country_topic_risk as (
    select edition, iso3, topic, score
    from country_topic_risk
    where edition = $edition
),

isic_codes as (
    -- sections and divisions only: the levels the weight table is authored at
    select code, level
    from isic
    where level in ('section', 'division')
),

looked_up_weights as (
    -- §3 lookup (a division without its own row for a topic inherits its section's weight):
    -- the one home of the rule is the table macro in sql/sectors/sector_weight_lookup.sql
    select isic_code, topic, sector_weight
    from sector_weight_lookup('isic', 'sector_weights')
),

code_weights as (
    select
        c.code as isic_code,
        c.level,
        t.topic,
        w.sector_weight
    from isic_codes as c
    cross join (select distinct topic from country_topic_risk) as t
    left join looked_up_weights as w
      on w.isic_code = c.code and w.topic = t.topic
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
