-- Country topic scores for one edition (METHODOLOGY §2.4): the mean of the
-- topic's normalised (possibly imputed) indicator scores, and its confidence
-- (METHODOLOGY §8a): the mean over the topic's indicators of 1 for an observed
-- value, 0.5 when imputed from peers (same income group: methods 1-3 of §2.3), 0.25 when
-- imputed from geography alone (methods 4-5), 0 when only the world mean was left
-- (radar_pipeline.rules.methodology.IMPUTATION_CONFIDENCE holds the same table; a test keeps them equal).
-- A topic missing from the edition has no row here; its confidence is 0 and
-- `missing_topics` names it on every row.
-- Params: $edition, $missing_topics (comma list of allowed-missing topics, '' if none)

with

-- import -------------------------------------------------------------------
scores as (
    select * from indicator_scores where edition = $edition
),

indicators as (
    select indicator_id, topic from indicator_registry
),

-- logic --------------------------------------------------------------------
topic_scores as (
    select
        s.iso3,
        i.topic,
        avg(s.score order by s.indicator_id) as score,
        count(*) as n_indicators,
        count(*) filter (where s.imputed) as n_imputed,
        avg(
            case s.method
                when 'direct' then 1.0
                when 'peer_subregion_mean' then 0.5
                when 'peer_region_mean' then 0.5
                when 'income_group_mean' then 0.5
                when 'subregion_mean' then 0.25
                when 'region_mean' then 0.25
                else 0.0
            end
            order by s.indicator_id
        ) as confidence
    from scores as s
    inner join indicators as i using (indicator_id)
    group by s.iso3, i.topic
)

-- final --------------------------------------------------------------------
select
    cast($edition as integer) as edition,
    iso3,
    topic,
    score,
    cast(n_indicators as integer) as n_indicators,
    cast(n_imputed as integer) as n_imputed,
    cast(confidence as double) as confidence,
    cast($missing_topics as varchar) as missing_topics
from topic_scores
order by iso3, topic
