-- inherent_risk: inherent risk per edition x country x ISIC class x topic (METHODOLOGY §5):
-- country topic score, sector weight, high-risk-goods uplift and the resulting score.
-- Inputs: inherent_risk, countries, isic.

with

inherent_risk as (
    select * from inherent_risk
),

countries as (
    select iso3, name from countries
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
        r.isic_class,
        i.isic_title,
        i.isic_section,
        r.topic,
        r.country_score,
        r.sector_weight,
        r.hrg_uplift,
        r.score,
        r.methodology_version
    from inherent_risk as r
    left join countries as c using (iso3)
    left join isic_classes as i using (isic_class)
)

select * from final
order by edition, iso3, isic_class, topic
