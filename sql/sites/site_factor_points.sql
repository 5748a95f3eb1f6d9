-- One row per site in scope x SAQ factor (METHODOLOGY §6): the answer, the level the
-- rule table gives it, its points and the factor's maximum. The explanation grid only
-- (site_score_factors): scores aggregate the sparse site_factor_answers directly, and this
-- adds the unanswered factors around the same rows, so both always agree.
-- Tables: score_scope(site_key, site_id), saq_factors, and the view site_factor_answers (same scope).
-- No parameters.
with

scope as (
    select site_key, site_id from score_scope
),

-- factor_id numbered as in site_factor_answers
factors as (
    select
        row_number() over (order by factor)::integer as factor_id,
        factor,
        any_value(field) as field,
        any_value(denominator_field) as denominator_field,
        max(points) as max_points
    from saq_factors
    group by factor
),

answered as (
    select * from site_factor_answers
),

final as (
    select
        s.site_id,
        f.factor,
        case
            when a.site_key is null then null
            when f.denominator_field is not null then
                f.field || '=' || a.value_num::varchar || ', ' || f.denominator_field || '='
                || a.denominator_num::varchar
                || coalesce(' (ratio ' || round(a.ratio, 3)::varchar || ')', '')
            else coalesce(a.value_num::varchar, a.value_bool::varchar, a.value_text)
        end as answer,
        a.level,
        coalesce(a.points, 0)::double as points,
        f.max_points::double as max_points,
        a.site_key is not null as answered
    from scope as s
    cross join factors as f
    left join answered as a on a.site_key = s.site_key and a.factor_id = f.factor_id
)

select * from final
