-- site_nonconformities: audit findings of every site's latest accepted record, open or closed.
-- Inputs: site_nonconformities, sites. One row per (site_id, nc_id).

with

site_nonconformities as (
    select * from site_nonconformities
),

sites as (
    select site_id, site_name, iso3 from sites
),

final as (
    select
        n.site_id,
        clean_text(s.site_name) as site_name,  -- free text reaches BI tools: rule_sql.install
        s.iso3,
        n.nc_id,
        n.severity,
        n.status,
        n.raised_on,
        n.closed_on
    from site_nonconformities as n
    left join sites as s using (site_id)
)

select * from final
order by site_id, nc_id
