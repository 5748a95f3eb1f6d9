-- One row per (site in scope, conditional control that applies to it) (METHODOLOGY §7).
-- A catalogue control with an applies_when_field applies only where the site's SAQ answer
-- to that question passes the test: `is` (answer = value) or `is_not` (answer <> value),
-- e.g. "freely elected worker committee where no union" applies where
-- worker_representation is_not 'union', accommodation controls where provides_accommodation
-- is 'true'. An unanswered condition leaves the control out: a thin questionnaire must not
-- put controls the site may not need into its denominator. Controls without a condition
-- apply everywhere and have no row here (site_scores adds them once, for every site).
-- Read by site_scores (available / achieved points) and site_control_points (explanation grid).
-- Tables: score_scope, site_saq, controls_catalogue. No parameters.
with

scope as (
    select site_key, site_id from score_scope
),

conditions as (
    select
        control_id,
        points,
        applies_when_field as field,
        applies_when_test as test,
        applies_when_value as value
    from controls_catalogue
    where applies_when_field is not null
),

-- the answer as text: yes/no questions as 'true' / 'false', choices as given
answers as (
    select
        sc.site_key,
        q.field,
        coalesce(q.value_text, lower(q.value_bool::varchar)) as answer
    from site_saq as q
    inner join scope as sc using (site_id)
    where q.field in (select field from conditions)
),

final as (
    select
        a.site_key,
        k.control_id,
        k.points
    from answers as a
    inner join conditions as k using (field)
    where a.answer is not null
        and case k.test
            when 'is' then a.answer = k.value
            when 'is_not' then a.answer <> k.value
        end
)

select * from final
