-- Site scores as published on a date, on a DuckLake warehouse (RADAR_WAREHOUSE=ducklake:...).
-- `radar publish` on a lake copies nothing: it tags the lake's current snapshot (table
-- snapshot_tags, kind 'published'). This reads site_scores and sites exactly as that snapshot
-- held them (DuckLake time travel, AT (VERSION => ...)), whatever was written since.
-- Against the LAKE (attached read-only and USEd, as docs/deploy.md shows). Choose the date first:
--     set variable published_on = date '2026-12-01';
-- without it: the latest publish. DuckDB allows no subquery inside AT (...), hence the variable.

set variable published_snapshot = (
    select snapshot_id
    from snapshot_tags
    where kind = 'published'
      and tagged_at < coalesce(getvariable('published_on')::date, date '9999-12-31') + interval 1 day
    order by tagged_at desc, snapshot_id desc
    limit 1
);

with

scores as (
    select * from site_scores at (version => getvariable('published_snapshot'))
),

site_register as (
    select * from sites at (version => getvariable('published_snapshot'))
),

final as (
    select
        s.edition,
        s.site_id,
        r.site_name,
        r.iso3,
        s.final_score,
        s.category,
        s.scored_at,
        getvariable('published_snapshot') as published_snapshot
    from scores as s
    left join site_register as r using (site_id)
)

select * from final
order by edition, site_id;
