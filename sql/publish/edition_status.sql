-- edition_status: per edition, whether every stored row was computed with the rules in force
-- (METHODOLOGY §8c). Inputs: the temp view stale_rows (sql/warehouse/stale_rows.sql) and the
-- temp table current_versions, installed by radar_pipeline/rules/staleness.py; the editions that
-- have any country risk, inherent risk or site score.
-- Output: edition, country_current, inherent_current, site_current, current, stale,
-- methodology_version.

with

stale as (
    select * from stale_rows where edition is not null
),

editions as (
    select distinct edition from country_topic_risk
    union
    select distinct edition from inherent_risk_overall
    union
    select distinct edition from site_scores
),

per_edition as (
    select
        e.edition,
        count(*) filter (where s.stage = 'country') = 0 as country_current,
        count(*) filter (where s.stage = 'inherent') = 0 as inherent_current,
        count(*) filter (where s.stage = 'site') = 0 as site_current,
        string_agg(
            s.table_name || ': ' || s.n_stale || ' of ' || s.n_rows || ' rows (' || s.reason || ')', '; '
            order by s.stage, s.table_name, s.reason
        ) as stale
    from editions as e
    left join stale as s using (edition)
    group by e.edition
),

final as (
    select
        edition,
        country_current,
        inherent_current,
        site_current,
        country_current and inherent_current and site_current as current,
        stale,
        (select version from current_versions where stage = 'site') as methodology_version
    from per_edition
)

select * from final
order by edition
