-- hrg_uplift: high-risk-goods uplift per (edition, country, ISIC class, topic), METHODOLOGY §4.
-- Parameters: $edition. Inputs: high_risk_goods(edition, iso3, isic_class, good, risk_type, source),
-- fli_covered(isic_code, level) = rules/fli_covered_divisions.csv.
-- Output: edition, iso3, isic_class, topic, uplift (1 or 2; absent row = no uplift).

with

high_risk_goods as (
    select edition, iso3, isic_class, risk_type
    from high_risk_goods
    where edition = $edition
),

fli_covered as (
    -- codes at division (2), group (3) or class (4 digits); the list does not depend on country
    select distinct isic_code
    from fli_covered
),

risk_topics as (
    -- §4 risk type -> topic; conflict minerals feed two topics
    select * from (values
        ('forced_labour',     'forced_labour'),
        ('child_labour',      'children'),
        ('deforestation',     'biodiversity'),
        ('conflict_minerals', 'forced_labour'),
        ('conflict_minerals', 'business_ethics')
    ) as t(risk_type, topic)
),

hits as (
    select h.edition, h.iso3, h.isic_class, rt.topic
    from high_risk_goods as h
    join risk_topics as rt using (risk_type)
),

fli_classes as (
    -- a class is covered when its division, its group or the class itself is listed
    select distinct h.isic_class
    from (select distinct isic_class from hits) as h
    join fli_covered as f
      on f.isic_code in (left(h.isic_class, 2), left(h.isic_class, 3), h.isic_class)
),

scored as (
    -- the Forced Labour Index already prices forced labour in covered sectors,
    -- so a listed good there adds 1 instead of 2 on that topic only
    select
        hits.edition, hits.iso3, hits.isic_class, hits.topic,
        case when hits.topic = 'forced_labour' and fc.isic_class is not null then 1 else 2 end as uplift
    from hits
    left join fli_classes as fc using (isic_class)
),

final as (
    -- several goods on one (country, class, topic) do not add up: take the max
    select edition, iso3, isic_class, topic, max(uplift)::integer as uplift
    from scored
    group by all
)

select * from final
order by iso3, isic_class, topic
