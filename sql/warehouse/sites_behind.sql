-- sites_behind: every registered site whose latest score predates the latest edition's inherent
-- stage (edition_stages, written by the refresh's last step): its score on that edition was
-- computed before the edition was (re)computed, or it has none on it and was last scored before
-- (on an older edition). One row per site: (edition, computed_at, site_id).
-- Not listed: a site never scored (an intake whose scoring run is queued: it is only absent), and
-- a site scored on an older edition on purpose after the refresh (`radar sites ingest --edition`).
-- Read by the publish asset (it holds a snapshot back while any site is behind) and by the
-- methodology sensor (it rescores sites left behind once nothing else will: a failed rescoring).

with

latest as (
    select max(edition) as edition from inherent_risk_overall
),

refreshed as (
    select stages.edition, stages.computed_at
    from edition_stages as stages
    where stages.stage = 'inherent' and stages.edition = (select edition from latest)
),

scored as (
    select
        site_id,
        max(scored_at) as any_at,
        max(scored_at) filter (where edition = (select edition from latest)) as latest_at
    from site_scores
    where site_id in (select site_id from sites)
    group by site_id
),

final as (
    select refreshed.edition, refreshed.computed_at, scored.site_id
    from scored
    cross join refreshed
    where coalesce(scored.latest_at, scored.any_at) < refreshed.computed_at
)

select * from final
order by site_id
