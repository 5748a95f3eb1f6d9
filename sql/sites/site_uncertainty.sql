-- site_uncertainty: how sure each site's category is (issue 25 item 2, extends METHODOLOGY §8a).
-- The seeded draws of the country topic scores (country_topic_draws: each draw's topic score minus
-- the reported one, radar_pipeline/country_risk/uncertainty.py) are carried through §5 and §8:
--   * inherent (§5) = mean over the topics of least(10, country + weight + uplift): a draw moves it
--     by the mean of the topic deltas, less what the cap at 10 cuts off. A cap can only cut where
--     weight + uplift > 4 (country scores, drawn ones too, stay within 1..6), so only those
--     (country, class, topic) rows are computed; a site code above class level (section, division,
--     group) averages its classes as site_scores.sql does;
--   * the final score (§8) is, for a site's fixed questionnaire, controls and findings, a monotone
--     non-decreasing function of inherent (base = (inherent + characteristics) / 2 or inherent;
--     x 0.75 / x 0.90 or floored at 6.0; round_score; score_category). So a site reaches a
--     category's lower bound exactly in the draws whose inherent delta is at least a threshold:
--     the draws are counted against the site's threshold on the sorted draws of its country (or
--     capped site code) by an ASOF join, not scored one by one. Draws within 1e-6 of a threshold
--     are scored with the §8 formula itself, so the counts are exact (a test scores every draw of
--     a few hundred sites through the same formula and compares).
-- p_<category> = share of the draws in that category; category_stability = share of the draws that
-- keep the calculated category (category_calculated: an override (§8b) fixes the reported category
-- by hand, so the simulation says how sure the calculation is, and `overridden` flags the site).
-- A site with no uncertainty (every delta 0.0) has its own inherent in every draw: stability 1.
-- An edition without draws (computed before this table existed) gives n_draws 0 and null shares.
-- Parameters: $edition, $methodology_version. Tables: site_scores, score_scope, country_topic_draws,
-- country_topic_uncertainty, inherent_risk, inherent_risk_overall, isic, score_categories; macro
-- round_score (sql/sites/score_rules.sql).
with

scope as (
    select site_id from score_scope
),

sites as (
    select
        s.site_id,
        s.iso3,
        s.isic_code,
        s.inherent,
        s.site_characteristics,
        s.inherent_only,
        s.category_calculated,
        s.category,
        s.override_reason is not null as overridden,
        -- the §8.3-§8.4 regime: fixed by the site's findings and controls, whatever its inherent
        s.open_critical > 0 or s.open_major >= 6 as floored,
        case
            when s.open_critical = 0 and s.open_major < 6 and s.mc_rounded >= 4.0 then 0.75
            when s.open_critical = 0 and s.open_major < 6 and s.mc_rounded >= 3.0 then 0.90
            else 1.0
        end as multiplier
    from site_scores as s
    semi join scope using (site_id)
    where s.edition = $edition and s.final_score is not null
),

draws as (
    select iso3, topic, draw, delta from country_topic_draws where edition = $edition
),

run as (
    select max(n_draws) as n_draws, max(seed) as seed from country_topic_uncertainty where edition = $edition
),

-- §5 without the cap: the mean of the topic deltas (summed in topic order: reruns are bit-identical)
country_delta as (
    select iso3, draw, avg(delta order by topic) as delta, count(*) as n_topics
    from draws
    group by iso3, draw
),

capped as (
    select iso3, isic_class, topic, country_score, sector_weight + hrg_uplift as k
    from inherent_risk
    where edition = $edition and sector_weight + hrg_uplift > 4
),

-- per (country, class, draw): what the cap at 10 cuts off the drawn mean, beyond what it cut before
class_cut as (
    select
        c.iso3,
        c.isic_class,
        d.draw,
        sum(
            greatest(0, c.country_score + d.delta + c.k - 10) - greatest(0, c.country_score + c.k - 10)
            order by c.topic
        ) as cut
    from capped as c
    inner join draws as d on d.iso3 = c.iso3 and d.topic = c.topic
    -- only the draws where the cap cuts something (before or after): the others add 0
    where c.country_score + d.delta + c.k > 10 or c.country_score + c.k > 10
    group by c.iso3, c.isic_class, d.draw
),

classes as (
    select code, section, division, grp from isic where level = 'class'
),

class_codes as (
    select code as isic_code, code as isic_class from classes
    union all
    select grp, code from classes where grp is not null
    union all
    select division, code from classes where division is not null
    union all
    select section, code from classes where section is not null
),

codes_in_scope as (
    select distinct iso3, isic_code from sites
),

-- the site codes whose classes include a capped one: their own draws (the mean over the code's
-- classes with an inherent row, as site_scores.sql averages them)
code_classes as (
    select s.iso3, s.isic_code, o.isic_class
    from codes_in_scope as s
    inner join class_codes as c on c.isic_code = s.isic_code
    inner join inherent_risk_overall as o
        on o.edition = $edition and o.iso3 = s.iso3 and o.isic_class = c.isic_class
),

capped_codes as (
    select cc.iso3, cc.isic_code, count(*) as n_classes
    from code_classes as cc
    where exists (select 1 from capped as k where k.iso3 = cc.iso3 and k.isic_class = cc.isic_class)
    group by cc.iso3, cc.isic_code
),

code_cut as (
    select
        cc.iso3,
        cc.isic_code,
        x.draw,
        sum(x.cut order by cc.isic_class) / any_value(k.n_classes) as cut
    from code_classes as cc
    inner join capped_codes as k on k.iso3 = cc.iso3 and k.isic_code = cc.isic_code
    inner join class_cut as x on x.iso3 = cc.iso3 and x.isic_class = cc.isic_class
    group by cc.iso3, cc.isic_code, x.draw
),

-- one draw list per key: the country's (uncapped site codes) or the capped site code's
keyed_draws as (
    select iso3 as draw_key, draw, delta from country_delta
    union all
    select
        g.iso3 || '|' || g.isic_code as draw_key,
        d.draw,
        d.delta - coalesce(x.cut / d.n_topics, 0) as delta
    from capped_codes as g
    inner join country_delta as d on d.iso3 = g.iso3
    left join code_cut as x on x.iso3 = g.iso3 and x.isic_code = g.isic_code and x.draw = d.draw
),

-- the sorted draws: each distinct delta with how many draws equal it and how many are <= it
ladder as (
    select
        draw_key,
        delta,
        count(*) as n_eq,
        sum(count(*)) over (partition by draw_key order by delta) as n_le
    from keyed_draws
    group by draw_key, delta
),

key_summary as (
    select
        draw_key,
        count(*) as n,
        quantile_cont(delta, 0.05) as d05,
        quantile_cont(delta, 0.95) as d95
    from keyed_draws
    group by draw_key
),

keyed_sites as (
    select
        s.*,
        case when k.iso3 is null then s.iso3 else s.iso3 || '|' || s.isic_code end as draw_key
    from sites as s
    left join capped_codes as k on k.iso3 = s.iso3 and k.isic_code = s.isic_code
),

-- the lower bound of every category above the lowest (rules/score_categories.csv)
bounds as (
    select category, min_score from score_categories where min_score is not null
),

-- per site and bound: the inherent delta from which the final score reaches the bound. Rounded
-- half up to one decimal, a score reaches b from b - 0.05 on; the floored regime always reaches a
-- bound up to 6.0 and otherwise rounds the base itself.
site_bounds as (
    select
        s.site_id,
        s.draw_key,
        s.inherent,
        s.site_characteristics,
        s.inherent_only,
        s.floored,
        s.multiplier,
        b.category as bound_category,
        b.min_score,
        case
            when s.floored and b.min_score <= 6.0 then '-infinity'::double
            when s.inherent_only then (b.min_score - 0.05) / s.multiplier - s.inherent
            else 2 * (b.min_score - 0.05) / s.multiplier - s.site_characteristics - s.inherent
        end as threshold
    from keyed_sites as s
    cross join bounds as b
),

-- draws below the threshold less 1e-6 (certainly below the bound), up to the threshold plus 1e-6
probed as (
    select
        sb.*,
        coalesce(lo.n_le, 0) as n_below,
        coalesce(hi.n_le, 0) - coalesce(lo.n_le, 0) as n_near
    from site_bounds as sb
    asof left join ladder as lo on sb.draw_key = lo.draw_key and sb.threshold - 1e-6 > lo.delta
    asof left join ladder as hi on sb.draw_key = hi.draw_key and sb.threshold + 1e-6 >= hi.delta
),

-- the draws near a threshold, scored with the §8 formula of site_scores.sql
near as (
    select
        p.site_id,
        p.bound_category,
        p.min_score,
        p.floored,
        p.multiplier,
        l.n_eq,
        case
            when p.inherent_only then p.inherent + l.delta
            else (p.inherent + l.delta + p.site_characteristics) / 2
        end as base
    from probed as p
    inner join ladder as l
        on
            l.draw_key = p.draw_key
            and l.delta >= p.threshold - 1e-6
            and l.delta <= p.threshold + 1e-6
    where p.n_near > 0
),

near_scored as (
    select
        site_id,
        bound_category,
        min_score,
        n_eq,
        round_score(
            case
                when floored and base < 6.0 then 6.0
                when floored then base
                else base * multiplier
            end
        ) as final_score
    from near
),

near_below as (
    select site_id, bound_category, sum(n_eq) filter (where final_score < min_score) as n_below
    from near_scored
    group by site_id, bound_category
),

reached as (
    -- draws whose final score reaches each bound
    select
        p.site_id,
        p.bound_category,
        p.min_score,
        k.n - p.n_below - coalesce(nb.n_below, 0) as n_reach
    from probed as p
    inner join key_summary as k on k.draw_key = p.draw_key
    left join near_below as nb on nb.site_id = p.site_id and nb.bound_category = p.bound_category
),

reach_by_bound as (
    -- per site: the draws reaching the Medium and the High bound (Low: every draw)
    select
        site_id,
        max(n_reach) filter (where bound_category = 'Medium') as reach_medium,
        max(n_reach) filter (where bound_category = 'High') as reach_high
    from reached
    group by site_id
),

pivoted as (
    -- draws in a category = draws reaching its lower bound - draws reaching the next one
    select
        s.site_id,
        (k.n - r.reach_medium) / k.n as p_low,
        (r.reach_medium - r.reach_high) / k.n as p_medium,
        r.reach_high / k.n as p_high
    from keyed_sites as s
    inner join key_summary as k on k.draw_key = s.draw_key
    inner join reach_by_bound as r on r.site_id = s.site_id
),

final as (
    select
        $edition::integer as edition,
        s.site_id,
        s.category_calculated,
        s.category,
        s.overridden,
        p.p_low,
        p.p_medium,
        p.p_high,
        case s.category_calculated
            when 'Low' then p.p_low
            when 'Medium' then p.p_medium
            when 'High' then p.p_high
        end as category_stability,
        s.inherent + k.d05 as inherent_low,
        s.inherent + k.d95 as inherent_high,
        coalesce(k.n, 0)::integer as n_draws,
        r.seed::bigint as seed,
        $methodology_version::varchar as methodology_version
    from keyed_sites as s
    cross join run as r
    left join key_summary as k on k.draw_key = s.draw_key
    left join pivoted as p on p.site_id = s.site_id
)

select * from final
