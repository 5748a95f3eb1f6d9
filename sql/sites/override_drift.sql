-- Stored scores whose category disagrees with the overrides in force today (METHODOLOGY §8b):
-- an override added, changed or removed in the overrides folder, or one that expired. An override
-- changes the category (and who/why), never the score, so these are the rows to rescore with
-- today's overrides — no other site, on every edition it has a score for. The predicate is the
-- one site_scores.sql applies, so a rescored row never drifts again.
-- Inputs: site_scores, site_overrides_in_force (temp table, radar_pipeline/sites/scoring.py).
-- Params: $edition (null: every edition)

with

stored as (
    select edition, site_id, category, category_calculated, override_reason, override_author
    from site_scores
    where $edition::integer is null or edition = $edition::integer
),

in_force as (
    select site_id, category, reason, author from site_overrides_in_force
)

select s.edition, s.site_id
from stored as s
left join in_force as o using (site_id)
where
    s.category is distinct from coalesce(o.category, s.category_calculated)
    or s.override_reason is distinct from o.reason
    or s.override_author is distinct from o.author
order by s.edition, s.site_id
