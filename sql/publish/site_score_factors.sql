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

select * from final
order by edition, site_id, kind, item
