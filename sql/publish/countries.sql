-- countries: the country dimension (UN M49 areas with a region), one row per ISO3.
-- Inputs: countries. Output: iso3, iso2, m49, country_name, region, subregion,
-- intermediate_region, ldc, lldc, sids.

with

countries as (
    select * from countries
),

final as (
    select
        iso3,
        iso2,
        m49,
        name as country_name,
        region,
        subregion,
        intermediate_region,
        ldc,
        lldc,
        sids,
        methodology_version
    from countries
)

select * from final
order by iso3
