-- One row per site in scope: combined overall site risk (METHODOLOGY §6, §7, §8, §9).
-- Parameters: $edition (inherent-risk edition), $methodology_version (stamped on rows).
-- Tables: score_scope, sites, site_saq, site_nonconformities, saq_factors, isic,
-- inherent_risk_overall, and the per-site parts site_factor_points / site_control_points
-- (materialised from the SQL files of the same names for the same scope).
with

scope as (
    select distinct site_id from score_scope
),

sites_in_scope as (
    select s.site_id, s.iso3, s.isic_code, s.isic_level, s.isic_class
    from sites as s
    inner join scope using (site_id)
),

factor_points as (
    select * from site_factor_points
),

control_points as (
    select * from site_control_points
),

-- the denominator is the same for every site: the sum of each factor's highest points
total_available as (
    select sum(max_points)::double as total_available
    from (select factor, max(points) as max_points from saq_factors group by factor)
),

inherent as (
    select * from inherent_risk_overall where edition = $edition
),

classes as (
    select code, section, division, grp from isic where level = 'class'
),

-- Inherent risk is published per ISIC class. A site given at section, division or
-- group level gets the mean over every class under its code in its country (the
-- unweighted mean: we know nothing about which class it really is). A class site
-- reads its own row.
site_inherent as (
    select
        s.site_id,
        avg(i.score order by i.isic_class) as inherent,
        avg(i.labour_standards order by i.isic_class) as labour_standards,
        avg(i.health_safety order by i.isic_class) as health_safety,
        avg(i.business_ethics order by i.isic_class) as business_ethics,
        avg(i.environment order by i.isic_class) as environment,
        any_value(i.missing_topics) as missing_topics,
        count(i.score) as n_inherent_classes
    from sites_in_scope as s
    inner join classes as c
        on case s.isic_level
            when 'class' then c.code = s.isic_code
            when 'group' then c.grp = s.isic_code
            when 'division' then c.division = s.isic_code
            when 'section' then c.section = s.isic_code
        end
    inner join inherent as i on i.iso3 = s.iso3 and i.isic_class = c.code
    group by s.site_id
),

-- §9: primary producer flag of the site's own code (a division like 01 is one too)
site_sector as (
    select s.site_id, coalesce(x.is_primary_producer, false) as is_primary_producer
    from sites_in_scope as s
    left join isic as x on x.code = s.isic_code
),

characteristics as (
    select
        site_id,
        sum(points) as raw_points,
        count(*) filter (where not answered) as n_unanswered,
        count(*) filter (where answered) as n_answered
    from factor_points
    group by site_id
),

-- "no self-assessment" = not one SAQ answer stored for the site
has_saq as (
    select distinct q.site_id from site_saq as q inner join scope using (site_id)
),

controls as (
    select
        site_id,
        sum(points_achieved) as achieved_points,
        sum(points_available) as available_points
    from control_points
    group by site_id
),

-- §8.2 audit state: open findings only (site_nonconformities holds the latest state)
audit_state as (
    select
        n.site_id,
        count(*) filter (where n.severity in ('business_critical', 'critical')) as open_critical,
        count(*) filter (where n.severity = 'major') as open_major
    from site_nonconformities as n
    inner join scope using (site_id)
    where n.status = 'open'
    group by n.site_id
),

assembled as (
    select
        s.site_id,
        s.iso3,
        s.isic_code,
        s.isic_class,
        i.inherent,
        i.labour_standards,
        i.health_safety,
        i.business_ethics,
        i.environment,
        i.missing_topics,
        h.site_id is null as inherent_only,
        coalesce(ch.raw_points, 0) as raw_points,
        t.total_available,
        coalesce(ch.n_unanswered, 0) as n_unanswered,
        -- §6: 1 + 9 * min(1, raw / (0.45 * total)); not used (null) when there is no SAQ
        case when h.site_id is not null
            then 1 + 9 * least(1.0, coalesce(ch.raw_points, 0) / (0.45 * t.total_available))
        end as site_characteristics,
        -- §7: 5 * achieved / available; null when no control applies (nothing to reduce on)
        case when ct.available_points > 0
            then 5 * ct.achieved_points / ct.available_points
        end as management_controls,
        coalesce(a.open_critical, 0) as open_critical,
        coalesce(a.open_major, 0) as open_major,
        sec.is_primary_producer
    from sites_in_scope as s
    cross join total_available as t
    left join site_inherent as i using (site_id)
    left join has_saq as h using (site_id)
    left join characteristics as ch using (site_id)
    left join controls as ct using (site_id)
    left join audit_state as a using (site_id)
    left join site_sector as sec using (site_id)
),

with_base as (
    select
        *,
        -- one-decimal rounding through DECIMAL: binary doubles such as 3.9499999999999997
        -- are first fixed to 9 decimals, then rounded half up (values are never negative)
        round(management_controls::decimal(18, 9), 1)::double as mc_rounded,
        case when inherent_only then inherent else (inherent + site_characteristics) / 2 end as base
    from assembled
),

adjusted as (
    select
        *,
        case
            -- §8.3 reductions only with no open critical and fewer than 6 open majors
            when open_critical = 0 and open_major < 6 and mc_rounded >= 4.0 then 'reduction_0.75'
            when open_critical = 0 and open_major < 6 and mc_rounded >= 3.0 then 'reduction_0.90'
            -- §8.4 floor: critical or 6+ majors pull anything below 6.0 up to 6.0
            when (open_critical > 0 or open_major >= 6) and base < 6.0 then 'floor_6.0'
            else 'none'
        end as adjustment
    from with_base
),

scored as (
    select
        *,
        round(
            case adjustment
                when 'reduction_0.75' then base * 0.75
                when 'reduction_0.90' then base * 0.90
                when 'floor_6.0' then 6.0
                else base
            end::decimal(18, 9),
            1
        )::double as final_score
    from adjusted
),

final as (
    select
        $edition::integer as edition,
        site_id,
        iso3,
        isic_code,
        isic_class,
        inherent,
        labour_standards,
        health_safety,
        business_ethics,
        environment,
        site_characteristics,
        raw_points,
        total_available,
        n_unanswered,
        management_controls,
        mc_rounded,
        open_critical,
        open_major,
        base,
        adjustment,
        final_score,
        -- §8.5 category on the rounded value
        case
            when final_score is null then null
            when final_score < 4.0 then 'Low'
            when final_score < 6.0 then 'Medium'
            else 'High'
        end as category,
        is_primary_producer,
        inherent_only,
        missing_topics,
        $methodology_version::varchar as methodology_version
    from scored
)

select * from final
order by site_id
