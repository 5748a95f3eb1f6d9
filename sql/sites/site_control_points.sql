-- One row per site in scope x catalogue control (METHODOLOGY §7). The explanation grid
-- only (site_score_factors): site_scores sums the same rule without building the grid.
-- Applicability comes from the view site_conditional_controls (a control's condition on a
-- SAQ answer; an unanswered condition = not applicable). A control the site claims but that
-- does not apply earns nothing and costs nothing.
-- Tables: score_scope, site_controls (one row per claimed site/control: the intake
-- de-duplicates), controls_catalogue, view site_conditional_controls. No parameters.
with

scope as (
    select site_key, site_id from score_scope
),

catalogue as (
    select control_id, level, points, applies_when_field
    from controls_catalogue
),

conditional as (
    select site_key, control_id from site_conditional_controls
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
        k.applies_when_field is null or y.control_id is not null as applicable,
        cl.control_id is not null as achieved
    from scope as s
    cross join catalogue as k
    left join conditional as y on y.site_key = s.site_key and y.control_id = k.control_id
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
