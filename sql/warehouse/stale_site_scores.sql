-- stale_site_scores: the (edition, site_id) pairs whose stored score disagrees with the rules in
-- force or was computed from inputs that changed since (the site rows of stale_rows.sql, one
-- row per site): what a refresh rescores, per edition, after recomputing the editions' country
-- and inherent stages. Reads the temp table current_versions(stage, version).

with

site_version as (
    select version from current_versions where stage = 'site'
),

inherent_version as (
    select version from current_versions where stage = 'inherent'
),

inherent_stale as (
    select distinct edition
    from inherent_risk_overall
    where methodology_version is distinct from (select version from inherent_version)
),

inherent_done as (
    select edition, computed_at from edition_stages where stage = 'inherent'
),

stale_scores as (
    select s.edition, s.site_id
    from site_scores as s
    left join inherent_done as d using (edition)
    where
        s.methodology_version is distinct from (select version from site_version)
        or s.scored_at < d.computed_at
        or s.edition in (select edition from inherent_stale)
),

stale_factors as (
    select distinct edition, site_id
    from site_score_factors
    where methodology_version is distinct from (select version from site_version)
    union
    select distinct edition, site_id
    from site_remediation
    where methodology_version is distinct from (select version from site_version)
    union
    select distinct edition, site_id
    from site_uncertainty
    where methodology_version is distinct from (select version from site_version)
),

final as (
    select edition, site_id from stale_scores
    union
    select edition, site_id from stale_factors
)

select * from final
order by edition, site_id
