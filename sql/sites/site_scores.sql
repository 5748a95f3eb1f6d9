-- One row per site in scope: combined overall site risk (METHODOLOGY §6, §7, §8, §9).
-- Parameters: $edition (inherent-risk edition), $methodology_version (stamped on rows).
-- Tables: score_scope (site_key: an integer per distinct site_id, carried through every
-- join and group by below instead of the text id), sites, site_controls (one row per
-- claimed site/control: the intake de-duplicates), site_nonconformities, saq_factors,
-- controls_catalogue, isic, inherent_risk_overall, site_overrides_in_force (site_id, category,
-- reason, author: at most one per site, §8b), and the views site_answer_points (one row per
-- site in scope with a questionnaire — a site_saq row —, one column per SAQ factor: the
-- points of the band its answer falls in, null when unanswered; rendered by scoring.py from
-- sql/sites/saq_bands.sql) and site_conditional_controls (conditional controls that apply, §7).
-- Macros round_score and score_category: sql/sites/score_rules.sql (the one home of the
-- rounding and category rules). Per-site sums come straight from one row per site
-- and the sparse control inputs: the site x factor / site x control grids are built only for
-- the explanation rows.
with

scope as (
    select site_key, site_id from score_scope
),

sites_in_scope as (
    select sc.site_key, s.site_id, s.iso3, s.isic_code, s.isic_level, s.isic_class
    from sites as s
    inner join scope as sc using (site_id)
),

-- one list per site: every factor's points, null where unanswered (the view's columns are
-- the factors, whatever saq_factors.csv lists)
answer_points as (
    select site_key, list_value(*columns(* exclude (site_key))) as points
    from site_answer_points
),

catalogue as (
    select control_id, points, applies_when_field
    from controls_catalogue
),

conditional as (
    select site_key, control_id from site_conditional_controls
),

-- one row per site with a questionnaire, one column per conditional control: its points where
-- it applies, else null (rendered by scoring.py from controls_catalogue)
condition_points as (
    select site_key, list_value(*columns(* exclude (site_key))) as points
    from site_control_conditions
),

overrides as (
    select site_id, category, reason, author from site_overrides_in_force
),

-- the denominator is the same for every site: the sum of each factor's highest points
total_available as (
    select
        sum(max_points)::double as total_available,
        count(*) as n_factors
    from (select factor, max(points) as max_points from saq_factors group by factor)
),

inherent as (
    select * from inherent_risk_overall where edition = $edition
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
    select distinct iso3, isic_level, isic_code from sites_in_scope
),

code_inherent as (
    select
        s.iso3,
        s.isic_level,
        s.isic_code,
        avg(i.score order by i.isic_class) as inherent,
        avg(i.labour_standards order by i.isic_class) as labour_standards,
        avg(i.health_safety order by i.isic_class) as health_safety,
        avg(i.business_ethics order by i.isic_class) as business_ethics,
        avg(i.environment order by i.isic_class) as environment,
        any_value(i.missing_topics) as missing_topics,
        avg(i.confidence order by i.isic_class) as inherent_confidence,
        count(i.score) as n_inherent_classes
    from codes_in_scope as s
    inner join class_codes as c on c.isic_level = s.isic_level and c.isic_code = s.isic_code
    inner join inherent as i on i.iso3 = s.iso3 and i.isic_class = c.isic_class
    group by s.iso3, s.isic_level, s.isic_code
),

site_inherent as (
    select s.site_key, ci.* exclude (iso3, isic_level, isic_code)
    from sites_in_scope as s
    inner join code_inherent as ci using (iso3, isic_level, isic_code)
),

-- §9: primary producer flag of the site's own code (a division like 01 is one too)
site_sector as (
    select s.site_key, coalesce(x.is_primary_producer, false) as is_primary_producer
    from sites_in_scope as s
    left join isic as x on x.code = s.isic_code
),

-- raw points = sum over answered factors of their band's points; unanswered = factors - answered.
-- One row per site with a questionnaire: "no self-assessment" = no row (no site_saq row)
characteristics as (
    select site_key, list_sum(points) as raw_points, list_count(points) as n_answered
    from answer_points
),

-- §7, as in site_control_points: a control applies when it has no condition, or the site's
-- SAQ answer passes its condition (site_conditional_controls); available = always-applicable
-- points (the same for every site) + the points of the conditional controls that apply
always_available as (
    select coalesce(sum(points), 0)::double as points from catalogue where applies_when_field is null
),

conditional_available as (
    select site_key, coalesce(list_sum(points), 0) as points
    from condition_points
),

-- achieved: claimed controls that apply (a claimed control outside the catalogue, or one
-- that does not apply, earns nothing). Claims of unconditional controls are summed per site_id
-- before the join to scope (one row per site instead of one per claim, ~8 per site); claims
-- of conditional controls also need the site's applicability (conditional).
achieved_always as (
    select sc.site_key, a.points
    from (
        select c.site_id, sum(k.points) as points
        from site_controls as c
        inner join catalogue as k using (control_id)
        where k.applies_when_field is null
        group by c.site_id
    ) as a
    inner join scope as sc using (site_id)
),

achieved_conditional as (
    select sc.site_key, sum(k.points) as points
    from site_controls as c
    inner join catalogue as k using (control_id)
    inner join scope as sc using (site_id)
    semi join conditional as y on y.site_key = sc.site_key and y.control_id = c.control_id
    where k.applies_when_field is not null
    group by sc.site_key
),

controls as (
    select
        s.site_key,
        (coalesce(aa.points, 0) + coalesce(ac.points, 0))::double as achieved_points,
        (al.points + coalesce(ca.points, 0))::double as available_points
    from scope as s
    cross join always_available as al
    left join conditional_available as ca using (site_key)
    left join achieved_always as aa using (site_key)
    left join achieved_conditional as ac using (site_key)
),

-- §8.2 audit state: open findings only (site_nonconformities holds the latest state)
audit_state as (
    select
        sc.site_key,
        count(*) filter (where n.severity in ('business_critical', 'critical')) as open_critical,
        count(*) filter (where n.severity = 'major') as open_major
    from site_nonconformities as n
    inner join scope as sc using (site_id)
    where n.status = 'open'
    group by sc.site_key
),

assembled as (
    select
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
        ch.site_key is null as inherent_only,
        coalesce(ch.raw_points, 0) as raw_points,
        t.total_available,
        t.n_factors - coalesce(ch.n_answered, 0) as n_unanswered,
        -- §8a: answered factors / all factors; 0 without an SAQ (no answers at all)
        coalesce(ch.n_answered, 0) / t.n_factors as saq_completeness,
        -- §6: 1 + 9 * min(1, raw / (0.45 * total)); not used (null) when there is no SAQ
        case when ch.site_key is not null
            then 1 + 9 * least(1.0, coalesce(ch.raw_points, 0) / (0.45 * t.total_available))
        end as site_characteristics,
        -- §7: 5 * achieved / available; null when no control applies (nothing to reduce on)
        case when ct.available_points > 0
            then 5 * ct.achieved_points / ct.available_points
        end as management_controls,
        coalesce(a.open_critical, 0) as open_critical,
        coalesce(a.open_major, 0) as open_major,
        sec.is_primary_producer
    from sites_in_scope as s
    cross join total_available as t
    left join site_inherent as i using (site_key)
    left join characteristics as ch using (site_key)
    left join controls as ct using (site_key)
    left join audit_state as a using (site_key)
    left join site_sector as sec using (site_key)
),

with_base as (
    select
        *,
        -- §8.3 on the score rounded as every final score is (round_score, sql/sites/score_rules.sql)
        round_score(management_controls) as mc_rounded,
        case when inherent_only then inherent else (inherent + site_characteristics) / 2 end as base
    from assembled
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
        $edition::integer as edition,
        site_id,
        iso3,
        isic_code,
        isic_class,
        inherent,
        labour_standards,
        health_safety,
        business_ethics,
        environment,
        site_characteristics,
        raw_points,
        total_available,
        n_unanswered,
        management_controls,
        mc_rounded,
        open_critical,
        open_major,
        base,
        adjustment,
        final_score,
        category_calculated,
        -- §8b: an analyst's override replaces the category (never the score), both are kept
        coalesce(o.category, category_calculated) as category,
        o.reason as override_reason,
        o.author as override_author,
        is_primary_producer,
        inherent_only,
        missing_topics,
        inherent_confidence,
        saq_completeness,
        confidence,
        case
            when confidence is null then null
            when confidence >= 0.8 then 'high'
            when confidence >= 0.5 then 'medium'
            else 'low'
        end as confidence_label,
        $methodology_version::varchar as methodology_version
    from categorised
    left join overrides as o using (site_id)
)

select * from final
