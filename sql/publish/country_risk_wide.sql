-- country_risk_wide: one row per edition x country, one column per topic (score 1-6,
-- null when the topic was missing in that edition), plus the row's mean over present topics.
-- Inputs: country_topic_risk, countries. Columns are fixed (the 14 topics of METHODOLOGY §1).

with

country_topic_risk as (
    select * from country_topic_risk
),

countries as (
    select iso3, name, region, subregion from countries
),

pivoted as (
    select
        edition,
        iso3,
        max(score) filter (where topic = 'wages') as wages,
        max(score) filter (where topic = 'children') as children,
        max(score) filter (where topic = 'forced_labour') as forced_labour,
        max(score) filter (where topic = 'regular_employment') as regular_employment,
        max(score) filter (where topic = 'gender') as gender,
        max(score) filter (where topic = 'discrimination') as discrimination,
        max(score) filter (where topic = 'freedom_of_association') as freedom_of_association,
        max(score) filter (where topic = 'working_hours') as working_hours,
        max(score) filter (where topic = 'health_safety') as health_safety,
        max(score) filter (where topic = 'business_ethics') as business_ethics,
        max(score) filter (where topic = 'energy_emissions') as energy_emissions,
        max(score) filter (where topic = 'biodiversity') as biodiversity,
        max(score) filter (where topic = 'waste_pollution') as waste_pollution,
        max(score) filter (where topic = 'water') as water,
        avg(score) as mean_score,
        count(*)::integer as n_topics,
        -- METHODOLOGY §8a: a missing topic counts 0, so divide by all 14 topics.
        sum(confidence order by topic) / 14.0 as confidence,
        any_value(missing_topics) as missing_topics,
        -- one refresh writes an edition's rows, so they share one version (§8c)
        any_value(methodology_version) as methodology_version
    from country_topic_risk
    group by edition, iso3
),

final as (
    select
        p.edition,
        p.iso3,
        c.name as country_name,
        c.region,
        c.subregion,
        p.* exclude (edition, iso3)
    from pivoted as p
    left join countries as c using (iso3)
)

select * from final
order by edition, iso3
