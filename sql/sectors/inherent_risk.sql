-- inherent_risk: per-topic inherent risk for every country x ISIC class x topic, METHODOLOGY §5.
-- topic score = least(10, country_score + sector_weight + hrg_uplift); the parts are kept
-- so every number can be explained.
-- Parameters: $edition. Inputs: country_topic_risk, sector_weights, isic, hrg_uplift
-- (edition, iso3, isic_class, topic, uplift).
-- Output: edition, iso3, isic_class, topic, country_score, sector_weight, hrg_uplift, score.
-- A topic absent from country_topic_risk for the edition (allowed missing) has no rows.

with

country_topic_risk as (
    select edition, iso3, topic, score
    from country_topic_risk
    where edition = $edition
),

isic_classes as (
    select code as isic_class
    from isic
    where level = 'class'
),

hrg_uplift as (
    select iso3, isic_class, topic, uplift
    from hrg_uplift
    where edition = $edition
),

looked_up_weights as (
    -- §3 lookup (its division's row if present, else its section's row): the one home of the
    -- rule is the table macro in sql/sectors/sector_weight_lookup.sql
    select isic_code, topic, sector_weight
    from sector_weight_lookup('isic', 'sector_weights')
),

class_weights as (
    select
        c.isic_class,
        t.topic,
        w.sector_weight
    from isic_classes as c
    cross join (select distinct topic from country_topic_risk) as t
    left join looked_up_weights as w
      on w.isic_code = c.isic_class and w.topic = t.topic
),

combined as (
    select
        r.edition,
        r.iso3,
        w.isic_class,
        r.topic,
        r.score as country_score,
        w.sector_weight,
        -- no listed good means no uplift, not an unknown one
        coalesce(u.uplift, 0) as hrg_uplift
    from country_topic_risk as r
    join class_weights as w using (topic)
    left join hrg_uplift as u
      on u.iso3 = r.iso3 and u.isic_class = w.isic_class and u.topic = r.topic
),

final as (
    select
        *,
        -- the scale tops out at 10 (§10: 5.2 + 4 + 2 = 11.2 -> 10)
        least(10, country_score + sector_weight + hrg_uplift) as score
    from combined
)

select * from final
order by iso3, isic_class, topic
