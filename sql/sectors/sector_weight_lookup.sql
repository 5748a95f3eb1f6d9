-- sector_weight_lookup: the §3 lookup, the one home of the rule. Every ISIC code (section,
-- division, group or class) takes, per topic of sector_weights, the weight of its division's
-- row when the table has one, else the weight of its section's row. A table macro installed
-- (temp, per connection) by radar_pipeline/rules/rule_sql.py. Arguments: the names of the ISIC table
-- (code, level, section, division) and of the weight table (isic_code, level, topic, weight),
-- normally sector_weight_lookup('isic', 'sector_weights'); names, because a macro body is bound
-- when it is created, before a fresh warehouse has these tables.
-- Output: isic_code, level, topic, sector_weight (null when neither row exists: the
-- sector_weights validator fails such a table), weight_level ('division' | 'section'),
-- weight_code (the row's isic_code).

create or replace temp macro sector_weight_lookup(isic_table, weights_table) as table
with

codes as (
    -- a division row of isic has no parent division: it is its own
    select
        code,
        level,
        section,
        case when level = 'division' then code else division end as division
    from query_table(isic_table)
),

section_weights as (
    select isic_code as section, topic, weight
    from query_table(weights_table)
    where level = 'section'
),

division_weights as (
    select isic_code as division, topic, weight
    from query_table(weights_table)
    where level = 'division'
),

topics as (
    select distinct topic from query_table(weights_table)
),

final as (
    select
        c.code as isic_code,
        c.level,
        t.topic,
        coalesce(dw.weight, sw.weight) as sector_weight,
        case
            when dw.weight is not null then 'division'
            when sw.weight is not null then 'section'
        end as weight_level,
        case
            when dw.weight is not null then dw.division
            when sw.weight is not null then sw.section
        end as weight_code
    from codes as c
    cross join topics as t
    left join division_weights as dw
        on c.division = dw.division and t.topic = dw.topic
    left join section_weights as sw
        on c.section = sw.section and t.topic = sw.topic
)

select * from final;
