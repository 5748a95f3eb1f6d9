-- What changed since the last edition? Sites whose score or category moved between the latest
-- edition and the site's previous one (unchanged sites are left out), with the change rounded
-- to the scores' 1 decimal. Biggest moves first. Against the PUBLISHED file.

with

score_history as (
    select * from site_scores_history
),

latest as (
    select max(edition) as edition from score_history
),

compared as (
    select h.*
    from score_history as h
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
        round(final_score - previous_final_score, 1) as score_change,
        previous_category,
        category,
        (previous_category is distinct from category) as category_changed
    from compared
)

select * from final
where score_change is distinct from 0 or category_changed  -- a score appearing/vanishing counts
order by abs(score_change) desc nulls last, site_id
