-- site_score_factors: the explanation of every site score, one row per site x edition x
-- factor / control / inherent part / adjustment (METHODOLOGY §8.6). Inputs: site_score_factors.

with

site_score_factors as (
    select * from site_score_factors
),

final as (
    select edition, site_id, kind, item, detail, points, methodology_version
    from site_score_factors
)

-- no ORDER BY: the rows are copied in the warehouse's order (what scoring inserted, per run).
-- Sorting ~80 rows per site was most of a publish (8M rows at 100k sites: ~9 s of CPU) and nothing
-- reads the order: a reader sorts or filters by site (issue 24 item 3).
select * from final
