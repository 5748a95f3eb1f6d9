-- inherent_risk_overall: one inherent score per (edition, country, ISIC class), METHODOLOGY §5.
-- score = mean over the topics present (by topic, not by pillar); pillar means are for display.
-- Parameters: $edition. Inputs: inherent_risk (edition, iso3, isic_class, topic, ..., score),
-- isic(code, level, ..., is_primary_producer), country_topic_risk (edition, iso3, topic, confidence),
-- topics (rules/topics.csv).
-- Output: edition, iso3, isic_class, score, labour_standards, health_safety, business_ethics,
-- environment, is_primary_producer, missing_topics ('' when all 14 topics are present),
-- confidence, confidence_label (METHODOLOGY §8a).

with

inherent_risk as (
    select edition, iso3, isic_class, topic, score
    from inherent_risk
    where edition = $edition
),

topic_confidence as (
    select iso3, topic, confidence
    from country_topic_risk
    where edition = $edition
),

isic_classes as (
    select code as isic_class, is_primary_producer
    from isic
    where level = 'class'
),

rule_topics as (
    -- the 14 topics of §1 and their pillars, in the methodology's order: rules/topics.csv
    -- (temp table topics, radar_pipeline/rules/rule_sql.py)
    select topic_order as ord, topic, pillar from topics
),

all_topics as (
    select list(topic order by ord) as topics from rule_topics
),

-- §8a: inherent confidence = mean of the topic confidences over all 14 topics, a missing
-- topic counting 0. Sector weights and HRG uplifts are rules, not data: they add no
-- uncertainty, so the confidence is the country's and the same for every class.
country_confidence as (
    select
        c.iso3,
        sum(c.confidence order by c.topic) / (select count(*) from rule_topics) as confidence
    from topic_confidence as c
    semi join rule_topics as t using (topic)
    group by c.iso3
),

scored as (
    select r.*, t.pillar
    from inherent_risk as r
    join rule_topics as t using (topic)
),

-- Each mean is summed in topic order, so that it does not depend on how the rows reach the
-- aggregate (deterministic to the last bit): the (topic, pillar, score) triples of a class are
-- listed, sorted by topic (topics are unique per class) and averaged in that order with list_avg
-- — the same sums as avg(score order by topic), without an ordered aggregate per mean.
listed as (
    select
        edition,
        iso3,
        isic_class,
        list_sort(list({'topic': topic, 'pillar': pillar, 'score': score})) as topic_scores
    from scored
    group by edition, iso3, isic_class
),

aggregated as (
    select
        l.edition,
        l.iso3,
        l.isic_class,
        list_avg(list_transform(l.topic_scores, lambda x: x.score)) as score,
        list_avg(list_transform(
            list_filter(l.topic_scores, lambda x: x.pillar = 'labour_standards'), lambda x: x.score
        )) as labour_standards,
        list_avg(list_transform(
            list_filter(l.topic_scores, lambda x: x.pillar = 'health_safety'), lambda x: x.score
        )) as health_safety,
        list_avg(list_transform(
            list_filter(l.topic_scores, lambda x: x.pillar = 'business_ethics'), lambda x: x.score
        )) as business_ethics,
        list_avg(list_transform(
            list_filter(l.topic_scores, lambda x: x.pillar = 'environment'), lambda x: x.score
        )) as environment,
        list_transform(l.topic_scores, lambda x: x.topic) as present_topics
    from listed as l
),

assembled as (
    select
        a.edition,
        a.iso3,
        a.isic_class,
        a.score,
        a.labour_standards,
        a.health_safety,
        a.business_ethics,
        a.environment,
        c.is_primary_producer,
        -- say which topics the mean leaves out, never a silent 0 (§2.4)
        array_to_string(
            list_filter(tl.topics, lambda t: not list_contains(a.present_topics, t)), ','
        ) as missing_topics,
        coalesce(cc.confidence, 0.0) as confidence
    from aggregated as a
    cross join all_topics as tl
    left join isic_classes as c using (isic_class)
    left join country_confidence as cc using (iso3)
),

final as (
    select
        *,
        case when confidence >= 0.8 then 'high' when confidence >= 0.5 then 'medium' else 'low' end
            as confidence_label
    from assembled
)

select * from final
order by iso3, isic_class
