-- benchmark_disagreements: per edition x topic x benchmark, the 10 countries whose topic-score
-- rank and benchmark rank differ most, with the topic's indicator values and how each was
-- obtained (issue 25 item 1).
-- Inputs: benchmark_disagreements (warehouse, radar_pipeline/country_risk/benchmarks.py).
-- Output: one row per (edition, topic, benchmark, iso3).

with

disagreements as (
    select * from benchmark_disagreements
),

final as (
    select
        edition,
        topic,
        benchmark,
        position,
        iso3,
        country_name,
        score,
        benchmark_value,
        score_rank,
        benchmark_rank,
        rank_gap,
        indicator_values,
        imputation_methods,
        methodology_version
    from disagreements
)

select * from final
order by edition, topic, benchmark, position
