-- Normalised indicator scores for one edition (METHODOLOGY §2.2-2.3).
-- Latest observation in the indicator's window, for the indicators the coverage rule keeps
-- (indicator_coverage) -> clipped to clip_min/clip_max -> min-max to 1..6 by direction ->
-- countries without a value get the mean of the first donor group holding at least
-- $min_donors observed countries, peers first: same local group (M49 intermediate region,
-- else sub-region) and income group, same region and income group, same income group; then
-- geography alone: the local group, the region; last the world (any number of donors).
-- Why peers first: a region's mean mixes economies that differ far more than neighbours do
-- (Singapore was rated poorer than Yemen, Russia given Serbia's informal employment).
-- Means are ordered aggregates: a parallel float sum depends on thread timing in the last bit,
-- and reruns must reproduce the marts byte for byte.
-- Macro: clip_value (sql/country_risk/clip_rules.sql, installed by radar_pipeline/rules/rule_sql.py)
-- Params: $edition, $min_donors

with

-- import -------------------------------------------------------------------
observations as (
    select * from indicator_observations where edition = $edition
),

indicators as (
    select indicator_id, direction, clip_min, clip_max from indicator_registry
),

kept as (
    select indicator_id from indicator_coverage where edition = $edition and included
),

countries as (
    select
        iso3,
        coalesce(intermediate_region, subregion) as local_group,
        region,
        income_group
    from edition_countries
    where edition = $edition
),

-- logic --------------------------------------------------------------------
latest as (
    select o.indicator_id, o.iso3, o.value, o.data_year
    from observations as o
    where
        o.indicator_id in (select k.indicator_id from kept as k)
        and o.iso3 in (select c.iso3 from countries as c)
    qualify row_number() over (
        partition by o.indicator_id, o.iso3 order by o.data_year desc, o.vintage desc
    ) = 1
),

clipped as (
    -- values beyond the catalogue's bounds are set to the bound first (water stress at 100)
    select
        l.*,
        clip_value(l.value, i.clip_min, i.clip_max) as used,
        i.direction
    from latest as l
    inner join indicators as i using (indicator_id)
),

ranges as (
    select indicator_id, min(used) as min_value, max(used) as max_value
    from clipped
    group by indicator_id
),

direct as (
    select
        c.indicator_id,
        c.iso3,
        c.value,
        c.data_year,
        case
            -- A flat indicator carries no information: everyone gets the midpoint.
            when r.max_value = r.min_value then 3.5
            when c.direction = 'higher_is_riskier'
                then 1 + 5 * (c.used - r.min_value) / (r.max_value - r.min_value)
            else 1 + 5 * (r.max_value - c.used) / (r.max_value - r.min_value)
        end as score
    from clipped as c
    inner join ranges as r using (indicator_id)
),

donors as (
    select d.indicator_id, d.iso3, d.score, c.local_group, c.region, c.income_group
    from direct as d
    inner join countries as c using (iso3)
),

-- one row per donor group: its mean, size and members (imputed_from)
peer_local as (
    select
        indicator_id, local_group, income_group,
        avg(score order by iso3) as score, count(*) as n, string_agg(iso3, ',' order by iso3) as members
    from donors where income_group is not null group by all
),

peer_region as (
    select
        indicator_id, region, income_group,
        avg(score order by iso3) as score, count(*) as n, string_agg(iso3, ',' order by iso3) as members
    from donors where income_group is not null group by all
),

income as (
    select
        indicator_id, income_group,
        avg(score order by iso3) as score, count(*) as n, string_agg(iso3, ',' order by iso3) as members
    from donors where income_group is not null group by all
),

local_group as (
    select
        indicator_id, local_group,
        avg(score order by iso3) as score, count(*) as n, string_agg(iso3, ',' order by iso3) as members
    from donors group by all
),

region as (
    select
        indicator_id, region,
        avg(score order by iso3) as score, count(*) as n, string_agg(iso3, ',' order by iso3) as members
    from donors group by all
),

world as (
    select
        indicator_id,
        avg(score order by iso3) as score, count(*) as n, string_agg(iso3, ',' order by iso3) as members
    from donors group by all
),

grid as (
    -- every country of the universe x every indicator that takes part in the edition
    select i.indicator_id, c.*
    from (select distinct indicator_id from direct) as i
    cross join countries as c
),

chosen as (
    -- a country without an income group matches no peer group (null never joins)
    select
        g.indicator_id,
        g.iso3,
        d.value,
        d.data_year,
        d.score as direct_score,
        case
            when d.score is not null then 'direct'
            when pl.n >= $min_donors then 'peer_subregion_mean'
            when pr.n >= $min_donors then 'peer_region_mean'
            when ig.n >= $min_donors then 'income_group_mean'
            when lg.n >= $min_donors then 'subregion_mean'
            when rg.n >= $min_donors then 'region_mean'
            else 'world_mean'
        end as method,
        pl.score as pl_score, pl.members as pl_members,
        pr.score as pr_score, pr.members as pr_members,
        ig.score as ig_score, ig.members as ig_members,
        lg.score as lg_score, lg.members as lg_members,
        rg.score as rg_score, rg.members as rg_members,
        w.score as w_score, w.members as w_members
    from grid as g
    left join direct as d using (indicator_id, iso3)
    left join peer_local as pl
        on pl.indicator_id = g.indicator_id and pl.local_group = g.local_group and pl.income_group = g.income_group
    left join peer_region as pr
        on pr.indicator_id = g.indicator_id and pr.region = g.region and pr.income_group = g.income_group
    left join income as ig on ig.indicator_id = g.indicator_id and ig.income_group = g.income_group
    left join local_group as lg on lg.indicator_id = g.indicator_id and lg.local_group = g.local_group
    left join region as rg on rg.indicator_id = g.indicator_id and rg.region = g.region
    left join world as w on w.indicator_id = g.indicator_id
),

filled as (
    select
        indicator_id,
        iso3,
        value,
        data_year,
        method,
        case method
            when 'direct' then direct_score
            when 'peer_subregion_mean' then pl_score
            when 'peer_region_mean' then pr_score
            when 'income_group_mean' then ig_score
            when 'subregion_mean' then lg_score
            when 'region_mean' then rg_score
            else w_score
        end as score,
        case method
            when 'direct' then null
            when 'peer_subregion_mean' then pl_members
            when 'peer_region_mean' then pr_members
            when 'income_group_mean' then ig_members
            when 'subregion_mean' then lg_members
            when 'region_mean' then rg_members
            else w_members
        end as imputed_from
    from chosen
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
    method != 'direct' as imputed,
    method,
    imputed_from
from filled
where score is not null
order by indicator_id, iso3
