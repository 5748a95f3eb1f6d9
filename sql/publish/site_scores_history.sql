-- site_scores_history: every site score per edition (METHODOLOGY §6-§9) with site, country
-- and sector names, plus the site's previous scored edition and the change since then.
-- Inputs: site_scores, sites, countries, isic. One row per (edition, site_id).

with

site_scores as (
    select * from site_scores
),

sites as (
    select site_id, site_name from sites
),

countries as (
    select iso3, name, region, subregion from countries
),

isic_classes as (
    select code as isic_class, title as isic_title, section as isic_section
    from isic
    where level = 'class'
),

with_previous as (
    select
        *,
        lag(edition) over w as previous_edition,
        lag(final_score) over w as previous_final_score,
        lag(category) over w as previous_category
    from site_scores
    window w as (partition by site_id order by edition)
),

final as (
    select
        s.edition,
        s.site_id,
        clean_text(t.site_name) as site_name,  -- free text reaches BI tools: rule_sql.install
        s.iso3,
        c.name as country_name,
        c.region,
        c.subregion,
        s.isic_code,
        s.isic_class,
        i.isic_title,
        i.isic_section,
        s.is_primary_producer,
        s.inherent,
        s.labour_standards,
        s.health_safety,
        s.business_ethics,
        s.environment,
        s.site_characteristics,
        s.raw_points,
        s.total_available,
        s.n_unanswered,
        s.management_controls,
        s.mc_rounded,
        s.open_critical,
        s.open_major,
        s.base,
        s.adjustment,
        s.final_score,
        s.category_calculated,
        s.category,
        clean_text(s.override_reason) as override_reason,
        clean_text(s.override_author) as override_author,
        s.inherent_only,
        s.missing_topics,
        s.inherent_confidence,
        s.saq_completeness,
        s.confidence,
        s.confidence_label,
        s.previous_edition,
        s.previous_final_score,
        s.previous_category,
        -- both scores are rounded by round_score: round the change the same way, so 5.1 - 5.3
        -- reads -0.2, not -0.20000000000000107
        round_score(s.final_score - s.previous_final_score) as score_change,
        s.methodology_version,
        s.scored_at
    from with_previous as s
    left join sites as t using (site_id)
    left join countries as c using (iso3)
    left join isic_classes as i using (isic_class)
)

select * from final
order by site_id, edition
