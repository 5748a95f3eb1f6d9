-- stale_rows: per table x edition, the rows that disagree with the rules in force
-- (METHODOLOGY §8c; `radar methodology --stale`, the published edition_status, and what a
-- refresh recomputes). Found by version, not by edition:
--   * version: the row's methodology_version is not its stage's current version
--     (temp table current_versions(stage, version), radar_pipeline/rules/staleness.py);
--   * inputs: a site score older than its edition's inherent stage (edition_stages), or scored
--     on an edition whose inherent rows are themselves stale: computed from inputs that have
--     changed since, whatever version it carries.
-- Tables are listed by stage as radar_pipeline/rules/fingerprint.py's STAGES declares them (a test
-- checks the two agree). Reference tables without an edition have edition null.
-- Output: table_name, stage, edition, n_rows, n_stale, reason, stored_versions.

with

versions as (
    select stage, version from current_versions
),

rows_by_version as (
    select 'edition_countries' as table_name, 'country' as stage, edition, methodology_version, count(*) as n
    from edition_countries group by all
    union all
    select 'edition_sources', 'country', edition, methodology_version, count(*) from edition_sources group by all
    union all
    select 'indicator_registry', 'country', null, methodology_version, count(*) from indicator_registry group by all
    union all
    select 'indicator_scores', 'country', edition, methodology_version, count(*) from indicator_scores group by all
    union all
    select 'indicator_coverage', 'country', edition, methodology_version, count(*)
    from indicator_coverage group by all
    union all
    select 'country_topic_risk', 'country', edition, methodology_version, count(*)
    from country_topic_risk group by all
    union all
    select 'coverage_report', 'country', edition, methodology_version, count(*) from coverage_report group by all
    union all
    select 'benchmark_agreement', 'country', edition, methodology_version, count(*)
    from benchmark_agreement group by all
    union all
    select 'benchmark_disagreements', 'country', edition, methodology_version, count(*)
    from benchmark_disagreements group by all
    union all
    select 'country_topic_uncertainty', 'country', edition, methodology_version, count(*)
    from country_topic_uncertainty group by all
    union all
    select 'country_topic_draws', 'country', edition, methodology_version, count(*)
    from country_topic_draws group by all
    union all
    select 'sector_weights', 'inherent', null, methodology_version, count(*) from sector_weights group by all
    union all
    select 'fli_covered', 'inherent', null, methodology_version, count(*) from fli_covered group by all
    union all
    select 'high_risk_goods', 'inherent', edition, methodology_version, count(*) from high_risk_goods group by all
    union all
    select 'hrg_unmapped', 'inherent', edition, methodology_version, count(*) from hrg_unmapped group by all
    union all
    select 'hrg_uplift', 'inherent', edition, methodology_version, count(*) from hrg_uplift group by all
    union all
    select 'sector_weighted_country_risk', 'inherent', edition, methodology_version, count(*)
    from sector_weighted_country_risk group by all
    union all
    select 'inherent_risk', 'inherent', edition, methodology_version, count(*) from inherent_risk group by all
    union all
    select 'inherent_risk_overall', 'inherent', edition, methodology_version, count(*)
    from inherent_risk_overall group by all
    union all
    select 'site_scores', 'site', edition, methodology_version, count(*) from site_scores group by all
    union all
    select 'site_score_factors', 'site', edition, methodology_version, count(*)
    from site_score_factors group by all
    union all
    select 'site_remediation', 'site', edition, methodology_version, count(*) from site_remediation group by all
    union all
    select 'site_uncertainty', 'site', edition, methodology_version, count(*) from site_uncertainty group by all
),

by_version as (
    select
        r.table_name,
        r.stage,
        r.edition,
        sum(r.n)::bigint as n_rows,
        (sum(r.n) filter (where r.methodology_version is distinct from v.version))::bigint as n_stale,
        string_agg(
            distinct coalesce(r.methodology_version, '(none)'), ', '
            order by coalesce(r.methodology_version, '(none)')
        ) filter (where r.methodology_version is distinct from v.version) as stored_versions
    from rows_by_version as r
    inner join versions as v using (stage)
    group by r.table_name, r.stage, r.edition
),

inherent_stale as (
    select distinct edition
    from by_version
    where stage = 'inherent' and edition is not null and n_stale > 0
),

inherent_done as (
    select edition, computed_at from edition_stages where stage = 'inherent'
),

site_inputs as (
    select
        s.edition,
        count(*) as n_rows,
        count(*) filter (
            where s.scored_at < d.computed_at or s.edition in (select edition from inherent_stale)
        ) as n_stale
    from site_scores as s
    left join inherent_done as d using (edition)
    group by s.edition
),

final as (
    select table_name, stage, edition, n_rows, n_stale, 'version' as reason, stored_versions
    from by_version
    where n_stale > 0
    union all
    select 'site_scores', 'site', edition, n_rows, n_stale, 'inputs', null
    from site_inputs
    where n_stale > 0
)

select * from final
order by edition nulls first, stage, table_name, reason
