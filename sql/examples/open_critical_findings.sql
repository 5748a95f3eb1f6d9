-- Which sites have open critical findings? Open business-critical or critical audit findings per
-- site, with the site's latest score. Against the PUBLISHED file.

with

findings as (
    select * from site_nonconformities
),

latest_scores as (
    select site_id, country_name, isic_title, final_score, category from site_scores_latest
),

open_critical as (
    select
        site_id,
        any_value(site_name) as site_name,
        count(*) as n_open_critical,
        count(*) filter (where severity = 'business_critical') as n_business_critical,
        min(raised_on) as oldest_raised_on,
        list(nc_id order by raised_on, nc_id) as nc_ids
    from findings
    where status = 'open' and severity in ('business_critical', 'critical')
    group by site_id
),

final as (
    select
        o.site_id,
        o.site_name,
        s.country_name,
        s.isic_title,
        o.n_open_critical,
        o.n_business_critical,
        o.oldest_raised_on,
        o.nc_ids,
        s.final_score,
        s.category
    from open_critical as o
    left join latest_scores as s using (site_id)
)

select * from final
order by n_business_critical desc, n_open_critical desc, oldest_raised_on, site_id
