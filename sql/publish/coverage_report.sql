-- coverage_report: per edition x topic, countries observed / partly imputed / imputed / missing,
-- the indicators that carried data and the publisher vintages used (issue 13), so a
-- methodology owner sees thin topics at a glance.
-- Inputs: coverage_report (warehouse). Output: one row per (edition, topic).

with

coverage as (
    select * from coverage_report
),

final as (
    select
        edition,
        topic,
        n_countries,
        observed,
        partly_imputed,
        imputed,
        missing,
        round(observed / nullif(n_countries, 0), 4) as share_observed,
        indicators,
        indicators_with_data,
        indicator_observed,
        nullif(vintages, '') as vintages,
        data_year_min,
        data_year_max,
        indicators_left_out,
        methodology_version
    from coverage
)

select * from final
order by edition, topic
