-- One row per site in scope x SAQ factor (METHODOLOGY §6): the answer, the level the
-- rule table gives it, its points and the factor's maximum. The explanation grid only
-- (site_score_factors): scores sum site_answer_points directly; both views are rendered by
-- scoring.py from the same bands (sql/sites/saq_bands.sql), so they always agree.
-- Tables: score_scope(site_key, site_id), saq_factors, saq_bands, and the view
-- site_answer_bands (one row per site in scope with a questionnaire, one column per factor:
-- {factor_id, band_id — 0 answered in no band, null unanswered —, answer text}).
-- No parameters.
with

scope as (
    select site_key, site_id from score_scope
),

-- factor_id numbered as in saq_bands
factors as (
    select
        row_number() over (order by factor)::integer as factor_id,
        factor,
        max(points) as max_points
    from saq_factors
    group by factor
),

bands as (
    select band_id, level, points from saq_bands where band_id is not null
),

-- one row per (site with a questionnaire, factor)
unpivoted as (
    unpivot site_answer_bands
    on columns(* exclude (site_key))
    into name factor_name value factor_answer
),

-- the struct's fields as columns: factor_id, band_id, answer
answers as (
    select site_key, unnest(factor_answer) from unpivoted
),

final as (
    select
        s.site_id,
        f.factor,
        case when a.band_id is not null then a.answer end as answer,
        case when a.band_id is not null then coalesce(b.level, 'none') end as level,
        coalesce(b.points, 0)::double as points,
        f.max_points::double as max_points,
        a.band_id is not null as answered
    from scope as s
    cross join factors as f
    left join answers as a on a.site_key = s.site_key and a.factor_id = f.factor_id
    left join bands as b on b.band_id = a.band_id
)

select * from final
