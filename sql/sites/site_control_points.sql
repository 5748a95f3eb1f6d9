-- One row per site in scope x catalogue control (METHODOLOGY §7). The explanation grid
-- only (site_score_factors): site_scores sums the same rule without building the grid.
-- A control whose applies_when names a SAQ yes/no question applies only when the site
-- answered that question "yes" (e.g. accommodation controls need provides_accommodation);
-- unanswered counts as not applicable, so a thin questionnaire cannot inflate the
-- denominator with controls the site may not need. A control the site claims but that
-- does not apply earns nothing and costs nothing.
-- Tables: score_scope, site_saq, site_controls (one row per claimed site/control: the
-- intake de-duplicates), controls_catalogue. No parameters.
with

scope as (
    select site_key, site_id from score_scope
),

catalogue as (
    select control_id, level, points, nullif(trim(applies_when), '') as applies_when
    from controls_catalogue
),

yes_answers as (
    select q.site_id, q.field
    from site_saq as q
    semi join scope using (site_id)
    where q.value_bool and q.field in (select applies_when from catalogue)
),

claimed as (
    select c.site_id, c.control_id
    from site_controls as c
    semi join scope using (site_id)
),

site_control as (
    select
        s.site_id,
        k.control_id,
        k.level,
        k.points,
        k.applies_when is null or y.field is not null as applicable,
        cl.control_id is not null as achieved
    from scope as s
    cross join catalogue as k
    left join yes_answers as y on y.site_id = s.site_id and y.field = k.applies_when
    left join claimed as cl on cl.site_id = s.site_id and cl.control_id = k.control_id
),

final as (
    select
        site_id,
        control_id,
        level,
        applicable,
        achieved,
        case when applicable then points else 0 end::double as points_available,
        case when applicable and achieved then points else 0 end::double as points_achieved
    from site_control
)

select * from final
