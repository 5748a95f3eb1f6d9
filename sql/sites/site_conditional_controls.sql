-- One row per (site in scope, conditional control that applies to it) (METHODOLOGY §7).
-- A catalogue control with an applies_when_field applies only where the site's SAQ answer
-- to that question passes the test: `is` (answer = value) or `is_not` (answer <> value),
-- e.g. "freely elected worker committee where no union" applies where
-- worker_representation is_not 'union', accommodation controls where provides_accommodation
-- is 'true'. An unanswered condition leaves the control out: a thin questionnaire must not
-- put controls the site may not need into its denominator. Controls without a condition
-- apply everywhere and have no row here (site_scores adds them once, for every site).
-- Read by site_scores (available / achieved points) and site_control_points (explanation grid).
-- Tables: the view site_control_conditions (one row per site in scope with a questionnaire,
-- one column per conditional control: its points where its condition passes, else null;
-- rendered by scoring.py from controls_catalogue). No parameters.
with

conditions as (
    select * from site_control_conditions
),

-- UNPIVOT leaves out the nulls: one row per control that applies
final as (
    unpivot conditions
    on columns(* exclude (site_key))
    into name control_id value points
)

select site_key, control_id, points from final
