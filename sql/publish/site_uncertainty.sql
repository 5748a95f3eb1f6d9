-- site_uncertainty: per site and edition, how sure its category is — the share of the seeded
-- draws in each category and the share that keeps the calculated category (issue 25 item 2).
-- Inputs: site_uncertainty (written with the scores, sql/sites/site_uncertainty.sql).

with

uncertainty as (
    select * from site_uncertainty
),

final as (
    select
        edition,
        site_id,
        category_calculated,
        category,
        overridden,
        p_low,
        p_medium,
        p_high,
        category_stability,
        inherent_low,
        inherent_high,
        n_draws,
        seed,
        methodology_version
    from uncertainty
)

select * from final
order by edition, site_id
