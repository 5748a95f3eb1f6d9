-- inherent_risk_overall: one inherent score per (edition, country, ISIC class), METHODOLOGY §5.
-- score = mean over the topics present (by topic, not by pillar); pillar means are for display.
-- Parameters: $edition. Inputs: inherent_risk (edition, iso3, isic_class, topic, ..., score),
-- isic(code, level, ..., is_primary_producer).
-- Output: edition, iso3, isic_class, score, labour_standards, health_safety, business_ethics,
-- environment, is_primary_producer, missing_topics ('' when all 14 topics are present).

with

inherent_risk as (
    select edition, iso3, isic_class, topic, score
    from inherent_risk
    where edition = $edition
),

isic_classes as (
    select code as isic_class, is_primary_producer
    from isic
    where level = 'class'
),

topics as (
    -- the 14 topics of §1 and their pillars, in the methodology's order
    select * from (values
        (1,  'wages',                  'labour_standards'),
        (2,  'children',               'labour_standards'),
        (3,  'forced_labour',          'labour_standards'),
        (4,  'regular_employment',     'labour_standards'),
        (5,  'gender',                 'labour_standards'),
        (6,  'discrimination',         'labour_standards'),
        (7,  'freedom_of_association', 'labour_standards'),
        (8,  'working_hours',          'labour_standards'),
        (9,  'health_safety',          'health_safety'),
        (10, 'business_ethics',        'business_ethics'),
        (11, 'energy_emissions',       'environment'),
        (12, 'biodiversity',           'environment'),
        (13, 'waste_pollution',        'environment'),
        (14, 'water',                  'environment')
    ) as t(ord, topic, pillar)
),

all_topics as (
    select list(topic order by ord) as topics from topics
),

scored as (
    select r.*, t.pillar
    from inherent_risk as r
    join topics as t using (topic)
),

aggregated as (
    select
        edition,
        iso3,
        isic_class,
        avg(score order by topic) as score,
        avg(score order by topic) filter (where pillar = 'labour_standards') as labour_standards,
        avg(score order by topic) filter (where pillar = 'health_safety')    as health_safety,
        avg(score order by topic) filter (where pillar = 'business_ethics')  as business_ethics,
        avg(score order by topic) filter (where pillar = 'environment')      as environment,
        list(topic) as present_topics
    from scored
    group by edition, iso3, isic_class
),

final as (
    select
        a.edition,
        a.iso3,
        a.isic_class,
        a.score,
        a.labour_standards,
        a.health_safety,
        a.business_ethics,
        a.environment,
        c.is_primary_producer,
        -- say which topics the mean leaves out, never a silent 0 (§2.4)
        array_to_string(
            list_filter(tl.topics, lambda t: not list_contains(a.present_topics, t)), ','
        ) as missing_topics
    from aggregated as a
    cross join all_topics as tl
    left join isic_classes as c using (isic_class)
)

select * from final
order by iso3, isic_class
