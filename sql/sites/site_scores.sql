-- One row per site in scope: combined overall site risk (METHODOLOGY §6, §7, §8, §9).
-- Parameters: $edition (inherent-risk edition), $methodology_version (stamped on rows).
-- Tables: the scoped views of scoring.py — scoped_sites, scoped_controls and
-- scoped_nonconformities (the sites in score_scope and their claims / findings; plain views of
-- sites, site_controls, site_nonconformities when every site is scored) and
-- site_answer_summary (one row per site in scope with a questionnaire — a site_saq row —:
-- raw_points, the sum of the points of the bands its answers fall in (§6), n_answered, and
-- applies_mask, one bit per conditional control whose condition its answers pass (§7);
-- rendered by scoring.py from sql/sites/saq_bands.sql and controls_catalogue) —, saq_factors,
-- controls_catalogue, conditional_control_bits (control_id, bit: the same bits),
-- isic, inherent_risk_overall, site_overrides_in_force (site_id, category, reason, author: at
-- most one per site, §8b). Macros round_score and score_category (sql/sites/score_rules.sql:
-- the one home of the rounding and category rules) and conditional_points(mask) (scoring.py:
-- the points of the conditional controls whose bits are set).
-- One row per site is joined to one aggregate row per site of each sparse input (answers,
-- claims, open findings) on site_id: no site x factor / site x control grid (those are built
-- only for the explanation rows, sql/sites/site_score_factors.sql). No ORDER BY: the rows carry
-- site_row (the site's rowid in sites), which scoring.py orders them by, then drops.
with

-- the denominator is the same for every site: the sum of each factor's highest points
total_available as (
    select
        sum(max_points)::double as total_available,
        count(*) as n_factors
    from (select factor, max(points) as max_points from saq_factors group by factor)
),

-- §7 available points of the controls without a condition: the same for every site
always_available as (
    select coalesce(sum(points), 0)::double as points
    from controls_catalogue
    where applies_when_field is null
),

-- §7 claims (one row per claimed site/control: the intake de-duplicates), per site: the points
-- of the claimed unconditional controls, and the bits of the claimed conditional ones (a claimed
-- control outside the catalogue earns nothing)
claim_values as (
    select
        k.control_id,
        case when k.applies_when_field is null then k.points end as always_points,
        b.bit
    from controls_catalogue as k
    left join conditional_control_bits as b using (control_id)
),

claims as (
    select
        c.site_id,
        sum(v.always_points) as achieved_always,
        coalesce(bit_or(v.bit), 0) as claimed_mask
    from scoped_controls as c
    inner join claim_values as v using (control_id)
    group by c.site_id
),

-- §8.2 audit state: open findings only (site_nonconformities holds the latest state)
audit_state as (
    select
        site_id,
        count(*) filter (where severity in ('business_critical', 'critical')) as open_critical,
        count(*) filter (where severity = 'major') as open_major
    from scoped_nonconformities
    where status = 'open'
    group by site_id
),

inherent as (
    select
        iso3,
        isic_class,
        score,
        labour_standards,
        health_safety,
        business_ethics,
        environment,
        missing_topics,
        confidence
    from inherent_risk_overall
    where edition = $edition
),

classes as (
    select code, section, division, grp from isic where level = 'class'
),

-- Inherent risk is published per ISIC class. A site given at section, division or
-- group level gets the mean over every class under its code in its country (the
-- unweighted mean: we know nothing about which class it really is). A class site
-- reads its own row. The mean is taken once per (country, level, code) that occurs in
-- scope — a few thousand — and joined to the sites on equal keys, not once per site.
class_codes as (
    select 'class' as isic_level, code as isic_code, code as isic_class from classes
    union all
    select 'group', grp, code from classes where grp is not null
    union all
    select 'division', division, code from classes where division is not null
    union all
    select 'section', section, code from classes where section is not null
),

codes_in_scope as (
    select distinct iso3, isic_level, isic_code from scoped_sites
),

-- the classes' values in class order, each mean summed in that order (list_avg over the sorted
-- list: the same sums as avg(... order by isic_class), without an ordered aggregate)
code_classes as (
    select
        s.iso3,
        s.isic_level,
        s.isic_code,
        list_sort(list({
            'c': i.isic_class,
            's': i.score,
            'ls': i.labour_standards,
            'hs': i.health_safety,
            'be': i.business_ethics,
            'en': i.environment,
            'cf': i.confidence
        })) as v,
        any_value(i.missing_topics) as missing_topics
    from codes_in_scope as s
    inner join class_codes as c on c.isic_level = s.isic_level and c.isic_code = s.isic_code
    inner join inherent as i on i.iso3 = s.iso3 and i.isic_class = c.isic_class
    group by s.iso3, s.isic_level, s.isic_code
),

code_inherent as (
    select
        cc.iso3,
        cc.isic_level,
        cc.isic_code,
        list_avg(list_transform(cc.v, lambda x: x.s)) as inherent,
        list_avg(list_transform(cc.v, lambda x: x.ls)) as labour_standards,
        list_avg(list_transform(cc.v, lambda x: x.hs)) as health_safety,
        list_avg(list_transform(cc.v, lambda x: x.be)) as business_ethics,
        list_avg(list_transform(cc.v, lambda x: x.en)) as environment,
        cc.missing_topics,
        list_avg(list_transform(cc.v, lambda x: x.cf)) as inherent_confidence
    from code_classes as cc
),

assembled as (
    select
        s.site_row,
        s.site_id,
        s.iso3,
        s.isic_code,
        s.isic_class,
        i.inherent,
        i.labour_standards,
        i.health_safety,
        i.business_ethics,
        i.environment,
        i.missing_topics,
        i.inherent_confidence,
        ch.site_id is null as inherent_only,
        coalesce(ch.raw_points, 0)::double as raw_points,
        t.total_available,
        t.n_factors - coalesce(ch.n_answered, 0) as n_unanswered,
        -- §8a: answered factors / all factors; 0 without an SAQ (no answers at all)
        coalesce(ch.n_answered, 0) / t.n_factors as saq_completeness,
        -- §6: 1 + 9 * min(1, raw / (0.45 * total)); not used (null) when there is no SAQ
        case when ch.site_id is not null
            then 1 + 9 * least(1.0, coalesce(ch.raw_points, 0) / (0.45 * t.total_available))
        end as site_characteristics,
        -- §7: available = always-applicable points + the conditional controls that apply
        -- (an unanswered condition leaves the control out); achieved = claimed controls that apply
        (coalesce(cl.achieved_always, 0)
         + conditional_points(coalesce(ch.applies_mask, 0) & coalesce(cl.claimed_mask, 0)))::double
            as achieved_points,
        (al.points + conditional_points(coalesce(ch.applies_mask, 0)))::double as available_points,
        coalesce(a.open_critical, 0) as open_critical,
        coalesce(a.open_major, 0) as open_major,
        -- §9: primary producer flag of the site's own code (a division like 01 is one too)
        coalesce(x.is_primary_producer, false) as is_primary_producer
    from scoped_sites as s
    cross join total_available as t
    cross join always_available as al
    left join code_inherent as i
        on i.iso3 = s.iso3 and i.isic_level = s.isic_level and i.isic_code = s.isic_code
    left join site_answer_summary as ch on ch.site_id = s.site_id
    left join claims as cl on cl.site_id = s.site_id
    left join audit_state as a on a.site_id = s.site_id
    left join isic as x on x.code = s.isic_code
),

with_controls as (
    select
        * exclude (achieved_points, available_points),
        -- §7: 5 * achieved / available; null when no control applies (nothing to reduce on)
        case when available_points > 0
            then 5 * achieved_points / available_points
        end as management_controls
    from assembled
),

with_base as (
    select
        *,
        -- §8.3 on the score rounded as every final score is (round_score, sql/sites/score_rules.sql)
        round_score(management_controls) as mc_rounded,
        case when inherent_only then inherent else (inherent + site_characteristics) / 2 end as base
    from with_controls
),

adjusted as (
    select
        *,
        case
            -- §8.3 reductions only with no open critical and fewer than 6 open majors
            when open_critical = 0 and open_major < 6 and mc_rounded >= 4.0 then 'reduction_0.75'
            when open_critical = 0 and open_major < 6 and mc_rounded >= 3.0 then 'reduction_0.90'
            -- §8.4 floor: critical or 6+ majors pull anything below 6.0 up to 6.0
            when (open_critical > 0 or open_major >= 6) and base < 6.0 then 'floor_6.0'
            else 'none'
        end as adjustment
    from with_base
),

scored as (
    select
        *,
        -- §8.5 rounding: round_score (sql/sites/score_rules.sql)
        round_score(
            case adjustment
                when 'reduction_0.75' then base * 0.75
                when 'reduction_0.90' then base * 0.90
                when 'floor_6.0' then 6.0
                else base
            end
        ) as final_score
    from adjusted
),

categorised as (
    select
        *,
        -- §8.5 category on the rounded value: score_category reads rules/score_categories.csv
        score_category(final_score) as category_calculated,
        -- §8a: half the inherent risk's data confidence, half the questionnaire's completeness;
        -- beside the score, never in it
        0.5 * inherent_confidence + 0.5 * saq_completeness as confidence
    from scored
),

final as (
    select
        c.site_row,
        $edition::integer as edition,
        c.site_id,
        c.iso3,
        c.isic_code,
        c.isic_class,
        c.inherent,
        c.labour_standards,
        c.health_safety,
        c.business_ethics,
        c.environment,
        c.site_characteristics,
        c.raw_points,
        c.total_available,
        c.n_unanswered::bigint as n_unanswered,
        c.management_controls,
        c.mc_rounded,
        c.open_critical,
        c.open_major,
        c.base,
        c.adjustment,
        c.final_score,
        c.category_calculated,
        -- §8b: an analyst's override replaces the category (never the score), both are kept
        coalesce(o.category, c.category_calculated) as category,
        o.reason as override_reason,
        o.author as override_author,
        c.is_primary_producer,
        c.inherent_only,
        c.missing_topics,
        c.inherent_confidence,
        c.saq_completeness,
        c.confidence,
        case
            when c.confidence is null then null
            when c.confidence >= 0.8 then 'high'
            when c.confidence >= 0.5 then 'medium'
            else 'low'
        end as confidence_label,
        $methodology_version::varchar as methodology_version
    from categorised as c
    left join site_overrides_in_force as o on o.site_id = c.site_id
)

select * from final
