-- Coverage rule per indicator for one edition (METHODOLOGY §2): an indicator takes part in the
-- edition only where it has an observed value (within its max_age_years, already applied when
-- the observations were cut) for at least min_countries countries of the edition's universe.
-- Below that it is left out: no score, no imputation into 200 countries from 20.
-- Params: $edition, $min_countries_cap (a cap on every threshold; 1000000 = none)

with

-- import -------------------------------------------------------------------
observations as (
    select indicator_id, iso3 from indicator_observations where edition = $edition
),

universe as (
    select iso3 from edition_countries where edition = $edition
),

indicators as (
    select indicator_id, topic, min_countries from indicator_registry
),

-- logic --------------------------------------------------------------------
counts as (
    select o.indicator_id, count(distinct o.iso3) as n_countries
    from observations as o
    inner join universe as u using (iso3)
    group by o.indicator_id
),

thresholds as (
    select
        c.indicator_id,
        i.topic,
        c.n_countries,
        least(i.min_countries, cast($min_countries_cap as integer)) as min_countries
    from counts as c
    inner join indicators as i using (indicator_id)
)

-- final --------------------------------------------------------------------
select
    cast($edition as integer) as edition,
    indicator_id,
    topic,
    cast(n_countries as integer) as n_countries,
    cast(min_countries as integer) as min_countries,
    n_countries >= min_countries as included,
    case
        when n_countries < min_countries
            then 'observed for ' || n_countries || ' countries < min_countries ' || min_countries
    end as reason
from thresholds
order by indicator_id
