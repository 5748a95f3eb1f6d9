-- site_remediation: per site and edition, the fewest actions that lower its calculated category
-- (controls to put in place, open findings to close), in order, with the score after each.
-- Inputs: site_remediation (written with the scores, sql/sites/site_remediation.sql).

with

remediation as (
    select * from site_remediation
),

final as (
    select edition, site_id, step, action, item, detail, points, score_after, category_after, methodology_version
    from remediation
)

select * from final
order by edition, site_id, step
