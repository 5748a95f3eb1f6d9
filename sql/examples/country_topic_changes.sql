-- What changed since the last edition? Country topic risk: each country x topic in the latest
-- edition next to the previous edition, with the change. Biggest moves first.
-- Against the PUBLISHED file.

with

risk_rows as (
    select * from country_risk
),

editions as (
    select
        max(edition) as latest_edition,
        max(edition) filter (where edition < (select max(edition) from risk_rows)) as previous_edition
    -- the subquery above reads the same CTE on purpose (the edition before the latest)
    from risk_rows  -- noqa: AL04
),

latest as (
    select r.*
    from risk_rows as r
    join editions as e on r.edition = e.latest_edition
),

previous as (
    select r.*
    from risk_rows as r
    join editions as e on r.edition = e.previous_edition
),

final as (
    select
        l.iso3,
        l.country_name,
        l.topic,
        l.pillar,
        p.edition as previous_edition,
        l.edition,
        p.score as previous_score,
        l.score,
        l.score - p.score as score_change
    from latest as l
    join previous as p using (iso3, topic)
)

select * from final
where score_change <> 0
order by abs(score_change) desc, iso3, topic
