-- benchmark_agreement: per edition x topic x benchmark, the Spearman rho between the country topic
-- score (overall: mean country risk) and an independent reference series, with its bootstrap
-- 95 % interval and the rho of the previous methodology version (issue 25 item 1).
-- Inputs: benchmark_agreement (warehouse, radar_pipeline/country_risk/benchmarks.py).
-- Output: one row per (edition, topic, benchmark).

with

agreement as (
    select * from benchmark_agreement
),

final as (
    select
        edition,
        topic,
        benchmark,
        direction,
        min_rho,
        vintage,
        released_after_edition,
        n,
        rho,
        rho_low,
        rho_high,
        previous_methodology_version,
        previous_rho,
        methodology_version
    from agreement
)

select * from final
order by edition, topic, benchmark
