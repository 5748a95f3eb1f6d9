-- One row per site in scope x SAQ factor (METHODOLOGY §6): the answer, the level the
-- rule table gives it, its points and the factor's maximum.
-- Tables: score_scope(site_id), site_saq (long answers), saq_factors (rule bands with points).
-- No parameters.
with

scope as (
    select distinct site_id from score_scope
),

answers as (
    select q.site_id, q.field, q.value_num, q.value_bool, q.value_text
    from site_saq as q
    inner join scope using (site_id)
),

rules as (
    select * from saq_factors
),

-- one row per factor: which answer (and, for ratios, which denominator) it reads
factors as (
    select
        factor,
        any_value(field) as field,
        any_value(denominator_field) as denominator_field,
        max(points) as max_points
    from rules
    group by factor
),

-- every site gets every factor, answered or not, so unanswered questions are counted
site_factor as (
    select
        s.site_id,
        f.factor,
        f.field,
        f.denominator_field,
        f.max_points,
        n.value_num,
        n.value_bool,
        n.value_text,
        d.value_num as denominator_num,
        -- ratio factors need both shares; a lone answer is still "unanswered"
        case
            when f.denominator_field is null
                then coalesce(n.value_num::varchar, n.value_bool::varchar, n.value_text) is not null
            else n.value_num is not null and d.value_num is not null
        end as answered,
        -- rounded so 45/15 style ratios land exactly on band edges
        case when d.value_num > 0 then round(n.value_num / d.value_num, 9) end as ratio
    from scope as s
    cross join factors as f
    left join answers as n on n.site_id = s.site_id and n.field = f.field
    left join answers as d on d.site_id = s.site_id and d.field = f.denominator_field
),

-- each answered factor against each of its bands, with the value the band's kind reads:
-- number: the answer; ratio: women workers share / managers (supervisors) share;
-- ratio_zero_denominator: the women workers share, only when the denominator share is 0
candidates as (
    select
        sf.site_id,
        sf.factor,
        sf.value_bool,
        sf.value_text,
        r.kind,
        r.match_value,
        r.band_min,
        r.min_inclusive,
        r.band_max,
        r.max_inclusive,
        r.level,
        r.points,
        case r.kind
            when 'number' then sf.value_num
            when 'ratio' then sf.ratio
            when 'ratio_zero_denominator' then case when sf.denominator_num = 0 then sf.value_num end
        end as x
    from site_factor as sf
    inner join rules as r on r.factor = sf.factor
    where sf.answered
),

-- bounds are inclusive or exclusive per row, exactly as the rule table says
matched as (
    select site_id, factor, level, points
    from candidates
    where case kind
        when 'boolean' then value_bool = (lower(match_value) = 'true')
        when 'enum' then value_text = match_value
        else x is not null
            and (band_min is null
                 or (min_inclusive and x >= band_min)
                 or (not min_inclusive and x > band_min))
            and (band_max is null
                 or (max_inclusive and x <= band_max)
                 or (not max_inclusive and x < band_max))
    end
    -- bands of a factor should not overlap; if an edited table makes them, the riskier wins
    qualify row_number() over (partition by site_id, factor order by points desc) = 1
),

final as (
    select
        sf.site_id,
        sf.factor,
        case
            when not sf.answered then null
            when sf.denominator_field is not null then
                sf.field || '=' || sf.value_num::varchar || ', ' || sf.denominator_field || '='
                || sf.denominator_num::varchar
                || coalesce(' (ratio ' || round(sf.ratio, 3)::varchar || ')', '')
            else coalesce(sf.value_num::varchar, sf.value_bool::varchar, sf.value_text)
        end as answer,
        -- an answered question that no band lists carries no risk signal
        case when sf.answered then coalesce(m.level, 'none') end as level,
        case when sf.answered then coalesce(m.points, 0) else 0 end::double as points,
        sf.max_points::double as max_points,
        sf.answered
    from site_factor as sf
    left join matched as m on m.site_id = sf.site_id and m.factor = sf.factor
)

select * from final
order by site_id, factor
