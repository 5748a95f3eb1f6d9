-- Normalised indicator scores for one edition (METHODOLOGY §2.2-2.3).
-- Latest observation in the edition window -> min-max to 1..6 by direction
-- -> countries without a value get the mean of their M49 group, most local first
-- (intermediate region, sub-region, region), and when no country of the region has
-- a value, the mean over every country with one (`world_mean`, METHODOLOGY §1-2).
-- Means are ordered aggregates: a parallel float sum depends on thread timing in
-- the last bit, and reruns must reproduce the marts byte for byte.
-- Params: $edition

with

-- import -------------------------------------------------------------------
observations as (
    select * from indicator_observations where edition = $edition
),

indicators as (
    select indicator_id, direction from indicator_registry
),

countries as (
    -- The edition's own universe. Gap-fill groups from most to least local:
    -- M49's intermediate region ("Western Africa") where one exists, else the
    -- sub-region ("Northern Europe"), then the sub-region, then the region.
    select
        iso3,
        coalesce(intermediate_region, subregion) as local_group,
        intermediate_region is not null as local_is_intermediate,
        subregion,
        region
    from edition_countries
    where edition = $edition
),

-- logic --------------------------------------------------------------------
latest as (
    select indicator_id, iso3, value, data_year
    from observations
    qualify row_number() over (
        partition by indicator_id, iso3 order by data_year desc, vintage desc
    ) = 1
),

ranges as (
    select indicator_id, min(value) as min_value, max(value) as max_value
    from latest
    group by indicator_id
),

direct as (
    select
        l.indicator_id,
        l.iso3,
        l.value,
        l.data_year,
        case
            -- A flat indicator carries no information: everyone gets the midpoint.
            when r.max_value = r.min_value then 3.5
            when i.direction = 'higher_is_riskier'
                then 1 + 5 * (l.value - r.min_value) / (r.max_value - r.min_value)
            else 1 + 5 * (r.max_value - l.value) / (r.max_value - r.min_value)
        end as score
    from latest as l
    inner join ranges as r using (indicator_id)
    inner join indicators as i using (indicator_id)
),

direct_geo as (
    select d.*, c.local_group, c.subregion, c.region
    from direct as d
    inner join countries as c using (iso3)
),

local_means as (
    select indicator_id, local_group, avg(score order by iso3) as score
    from direct_geo group by all
),

subregion_means as (
    select indicator_id, subregion, avg(score order by iso3) as score
    from direct_geo group by all
),

region_means as (
    select indicator_id, region, avg(score order by iso3) as score
    from direct_geo group by all
),

world_means as (
    select indicator_id, avg(score order by iso3) as score
    from direct_geo group by all
),

grid as (
    -- every country of the universe x every indicator that has data this edition
    select i.indicator_id, c.*
    from (select distinct indicator_id from direct) as i
    cross join countries as c
),

filled as (
    select
        g.indicator_id,
        g.iso3,
        d.value,
        d.data_year,
        coalesce(d.score, lm.score, sm.score, rm.score, wm.score) as score,
        d.score is null as imputed,
        case
            when d.score is not null then 'direct'
            when lm.score is not null and g.local_is_intermediate then 'intermediate_region_mean'
            when lm.score is not null or sm.score is not null then 'subregion_mean'
            when rm.score is not null then 'region_mean'
            else 'world_mean'
        end as method,
        case
            when d.score is not null then null
            when lm.score is not null then g.local_group
            when sm.score is not null then g.subregion
            when rm.score is not null then g.region
            else 'World'
        end as imputed_from
    from grid as g
    left join direct as d using (indicator_id, iso3)
    left join local_means as lm on lm.indicator_id = g.indicator_id and lm.local_group = g.local_group
    left join subregion_means as sm on sm.indicator_id = g.indicator_id and sm.subregion = g.subregion
    left join region_means as rm on rm.indicator_id = g.indicator_id and rm.region = g.region
    left join world_means as wm on wm.indicator_id = g.indicator_id
)

-- final --------------------------------------------------------------------
select
    cast($edition as integer) as edition,
    indicator_id,
    iso3,
    value,
    data_year,
    -- clamp at the scale's ends: min-max rescaling can land an ulp outside 1-6 (6.000000000000001)
    least(6.0, greatest(1.0, score)) as score,
    imputed,
    method,
    imputed_from
from filled
where score is not null
order by indicator_id, iso3
