-- Long explanation of each site score: every number that went into it, one row each
-- (METHODOLOGY §8.6). kind: 'inherent_topic' (inherent risk overall and per pillar),
-- 'saq_factor' (points per SAQ factor), 'control' (points achieved per control),
-- 'adjustment' (the §8 step that fired, points = final score), 'override' (an analyst's
-- category override in force, §8b: reason and author), 'confidence' (§8a, points = confidence).
-- Parameters: $edition, $methodology_version. Tables: scored_sites (materialised) and the views
-- site_factor_points / site_control_points, all for the same scope (scoring._prepare).
with

scores as (
    select * from scored_sites
),

factor_points as (
    select * from site_factor_points
),

control_points as (
    select * from site_control_points
),

inherent_rows as (
    select site_id, 'inherent_topic' as kind, item, detail, points
    from scores
    cross join lateral (
        values
            ('inherent', 'overall inherent risk for ' || iso3 || ' / ' || isic_code, inherent),
            ('labour_standards', 'pillar mean', labour_standards),
            ('health_safety', 'pillar mean', health_safety),
            ('business_ethics', 'pillar mean', business_ethics),
            ('environment', 'pillar mean', environment)
    ) as t(item, detail, points)
),

factor_rows as (
    select
        site_id,
        'saq_factor' as kind,
        factor as item,
        case when answered then answer || ' -> ' || level || ' (max ' || max_points::varchar || ')'
             else 'unanswered (max ' || max_points::varchar || ')' end as detail,
        points
    from factor_points
),

control_rows as (
    select
        site_id,
        'control' as kind,
        control_id as item,
        case
            when not applicable then 'not applicable'
            when achieved then 'achieved, ' || points_available::varchar || ' available'
            else 'not achieved, ' || points_available::varchar || ' available'
        end as detail,
        points_achieved as points
    from control_points
),

adjustment_rows as (
    select
        site_id,
        'adjustment' as kind,
        adjustment as item,
        'base ' || coalesce(round(base, 4)::varchar, 'n/a')
            || case when inherent_only then ' (inherent only)' else '' end
            || ', characteristics ' || coalesce(round(site_characteristics, 4)::varchar, 'n/a')
            || ', controls ' || coalesce(mc_rounded::varchar, 'n/a')
            || ', open critical ' || open_critical::varchar
            || ', open major ' || open_major::varchar
            || ' -> ' || coalesce(final_score::varchar, 'n/a') || ' ' || coalesce(category_calculated, '')
            as detail,
        final_score as points
    from scores
),

override_rows as (
    select
        site_id,
        'override' as kind,
        category as item,
        'category ' || coalesce(category_calculated, 'n/a') || ' -> ' || category || ': ' || override_reason
            || ' (' || override_author || ')' as detail,
        null::double as points
    from scores
    where override_reason is not null
),

confidence_rows as (
    select
        site_id,
        'confidence' as kind,
        coalesce(confidence_label, 'unknown') as item,
        '0.5 x inherent ' || coalesce(round(inherent_confidence, 3)::varchar, 'n/a')
            || ' + 0.5 x SAQ completeness ' || round(saq_completeness, 3)::varchar as detail,
        confidence as points
    from scores
),

unioned as (
    select * from inherent_rows
    union all select * from factor_rows
    union all select * from control_rows
    union all select * from adjustment_rows
    union all select * from override_rows
    union all select * from confidence_rows
)

select
    $edition::integer as edition,
    site_id,
    kind,
    item,
    detail,
    points::double as points,
    $methodology_version::varchar as methodology_version
from unioned
-- no ORDER BY: store.score_and_store inserts these rows straight into site_score_factors
-- (79 per site: sorting 79M rows at 1M sites buys nothing); factor_rows orders its frame
