-- Country topic scores for one edition (METHODOLOGY §2.4): the mean of the
-- topic's normalised (possibly imputed) indicator scores.
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
        count(*) filter (where s.imputed) as n_imputed
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
    cast($missing_topics as varchar) as missing_topics
from topic_scores
order by iso3, topic
