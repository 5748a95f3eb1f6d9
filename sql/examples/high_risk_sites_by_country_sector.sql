-- Which countries and sectors hold my high-risk sites?
-- Against the PUBLISHED file (data/published/radar.duckdb or a buyer's file).
-- One row per country x ISIC section x class with High-category sites in their latest edition.

with

latest_scores as (
    select * from site_scores_latest
),

high as (
    select *
    from latest_scores
    where category = 'High'
),

final as (
    select
        iso3,
        country_name,
        isic_section,
        isic_class,
        isic_title,
        count(*) as n_high_risk_sites,
        round(avg(final_score), 2) as mean_final_score,
        max(final_score) as max_final_score,
        list(site_id order by final_score desc, site_id)[1:5] as top_sites
    from high
    group by all
)

select * from final
order by n_high_risk_sites desc, mean_final_score desc, iso3, isic_class
