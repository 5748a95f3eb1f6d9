-- country_topic_uncertainty: per edition, country and topic the 90 % interval of the seeded
-- simulation of the publishers' standard errors and the imputation donors' spread, and where the
-- uncertainty comes from (issue 25 item 2; radar_pipeline/country_risk/uncertainty.py).
-- Inputs: country_topic_uncertainty (written with country_topic_risk).

with

uncertainty as (
    select * from country_topic_uncertainty
),

final as (
    select edition, iso3, topic, score, low, high, sd, source, n_draws, seed, methodology_version
    from uncertainty
)

select * from final
order by edition, iso3, topic
