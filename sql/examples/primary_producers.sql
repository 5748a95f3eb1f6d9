-- Which of my sites are primary producers (agriculture, forestry, fishing, mining), and how risky?
-- Against the PUBLISHED file. One row per primary-producer site, riskiest first.

with

latest_scores as (
    select * from site_scores_latest
),

primary_producers as (
    select *
    from latest_scores
    where is_primary_producer
),

final as (
    select
        site_id,
        site_name,
        country_name,
        isic_class,
        isic_title,
        edition,
        inherent,
        final_score,
        category,
        open_critical,
        inherent_only
    from primary_producers
)

select * from final
order by final_score desc nulls last, site_id
