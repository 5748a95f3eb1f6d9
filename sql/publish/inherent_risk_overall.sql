-- inherent_risk_overall: one inherent score per edition x country x ISIC class (mean over
-- topics) with pillar means, country and class names. Inputs: inherent_risk_overall,
-- countries, isic.

with

inherent_risk_overall as (
    select * from inherent_risk_overall
),

countries as (
    select iso3, name, region from countries
),

isic_classes as (
    select code as isic_class, title as isic_title, section as isic_section
    from isic
    where level = 'class'
),

final as (
    select
        r.edition,
        r.iso3,
        c.name as country_name,
        c.region,
        r.isic_class,
        i.isic_title,
        i.isic_section,
        r.score,
        r.labour_standards,
        r.health_safety,
        r.business_ethics,
        r.environment,
        r.is_primary_producer,
        r.missing_topics,
        r.confidence,
        r.confidence_label,
        r.methodology_version
    from inherent_risk_overall as r
    left join countries as c using (iso3)
    left join isic_classes as i using (isic_class)
)

select * from final
order by edition, iso3, isic_class
