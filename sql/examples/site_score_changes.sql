-- What changed since the last edition? Site scores: every site scored in the latest edition
-- and the one before it, with the change and whether its category moved. Biggest moves first.
-- Against the PUBLISHED file.

with

site_scores_history as (
    select * from site_scores_history
),

latest as (
    select max(edition) as edition from site_scores_history
),

compared as (
    select h.*
    from site_scores_history as h
    join latest using (edition)
    where h.previous_edition is not null
),

final as (
    select
        site_id,
        site_name,
        country_name,
        isic_class,
        previous_edition,
        edition,
        previous_final_score,
        final_score,
        score_change,
        previous_category,
        category,
        previous_category is distinct from category as category_changed
    from compared
)

select * from final
order by abs(score_change) desc nulls last, site_id
