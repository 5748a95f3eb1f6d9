-- Stored sites whose current content has no score for edition $edition (null: for any
-- edition): never scored, or changed (updated_at) after their last score. Every ingest and
-- inbox-sensor tick looks for them, so a process killed between storing a file and scoring it
-- leaves nothing unscored for good. The sensor asks "any edition": sites only lacking a score
-- for a newly refreshed edition are rescore_after_refresh's. In intake order (the order their
-- partitions were registered).
with

stored as (
    select site_id, updated_at, source_file, source_line from sites
),

scored as (
    select site_id, max(scored_at) as scored_at
    from site_scores
    where $edition::integer is null or edition = $edition::integer
    group by site_id
)

select stored.site_id
from stored
left join scored using (site_id)
where scored.site_id is null or scored.scored_at is null or scored.scored_at < stored.updated_at
order by stored.updated_at, stored.source_file, stored.source_line
