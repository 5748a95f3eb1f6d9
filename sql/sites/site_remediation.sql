-- site_remediation: per site above the lowest category, the fewest actions that move its
-- calculated category down one or more (issue 25 item 3) — applicable controls not yet in place
-- (§7) and open critical / major findings to close (§8) — each with what it changes and the
-- score after it. Exact, not a heuristic:
--   * the score depends on the controls only through their summed points (§7), so for k added
--     controls the k with the most points are best (ties: control id);
--   * findings act only through two thresholds (§8.3-§8.4: no open critical and fewer than 6
--     open majors lift the 6.0 floor and allow the reductions), so either every critical and
--     all but 5 majors are closed, or closing any is useless;
--   so trying k = 0..n controls with and without the needed closures covers every subset's
--   outcome; the cheapest that lowers the category wins (then the lower score, then fewer
--   closures). A test enumerates every subset through the scoring engine and finds none shorter.
-- A site no combination moves down gets one row, action 'none', saying why.
-- Parameters: $edition, $methodology_version. Tables: site_scores, site_score_factors (the
-- stored rows of the edition), site_nonconformities, controls_catalogue, score_scope (the sites
-- to explain); macros round_score, score_category and table score_categories (rule_sql).
with

scope as (
    select site_id from score_scope
),

scores as (
    select s.site_id, s.base, s.open_critical, s.open_major, s.final_score, s.category_calculated
    from site_scores as s
    semi join scope using (site_id)
    where s.edition = $edition
),

category_rank as (
    select category, row_number() over (order by min_score nulls first) as category_rank
    from score_categories
),

control_rows as (
    select
        f.site_id,
        f.item as control_id,
        f.detail <> 'not applicable' as applicable,
        coalesce(f.points, 0) > 0 as achieved,
        k.points
    from site_score_factors as f
    inner join controls_catalogue as k on k.control_id = f.item
    semi join scope using (site_id)
    where f.edition = $edition and f.kind = 'control'
),

totals as (
    select
        site_id,
        sum(points) filter (where applicable) as available_points,
        coalesce(sum(points) filter (where applicable and achieved), 0) as achieved_points
    from control_rows
    group by site_id
),

candidates as (
    select
        site_id,
        control_id,
        points,
        row_number() over (partition by site_id order by points desc, control_id) as k,
        sum(points) over (
            partition by site_id order by points desc, control_id rows between unbounded preceding and current row
        ) as added_points
    from control_rows
    where applicable and not achieved
),

control_steps as (
    select site_id, 0::bigint as k, 0::double as added_points from scores
    union all
    select site_id, k, added_points from candidates
),

options as (
    select
        s.site_id,
        c.k,
        c.added_points,
        o.close_findings,
        case when o.close_findings then s.open_critical + greatest(s.open_major - 5, 0) else 0 end as n_closes,
        case when o.close_findings then 0 else s.open_critical end as crit,
        case when o.close_findings then least(s.open_major, 5) else s.open_major end as major,
        s.base,
        round_score(5 * (t.achieved_points + c.added_points) / t.available_points) as mc_rounded
    from scores as s
    inner join control_steps as c using (site_id)
    inner join totals as t using (site_id)
    cross join (values (false), (true)) as o(close_findings)
    where t.available_points > 0 and s.base is not null
),

evaluated as (
    select
        *,
        -- §8.3-§8.5 exactly as sql/sites/site_scores.sql applies them
        round_score(
            case
                when crit = 0 and major < 6 and mc_rounded >= 4.0 then base * 0.75
                when crit = 0 and major < 6 and mc_rounded >= 3.0 then base * 0.90
                when (crit > 0 or major >= 6) and base < 6.0 then 6.0
                else base
            end
        ) as score_after
    from options
),

lowering as (
    select
        e.*,
        score_category(e.score_after) as category_after,
        row_number() over (
            partition by e.site_id order by e.k + e.n_closes, e.score_after, e.n_closes, e.k
        ) as choice
    from evaluated as e
    inner join scores as s using (site_id)
    inner join category_rank as now_rank on now_rank.category = s.category_calculated
    inner join category_rank as after_rank on after_rank.category = score_category(e.score_after)
    where after_rank.category_rank < now_rank.category_rank
),

chosen as (
    select * from lowering where choice = 1 and k + n_closes > 0
),

findings_to_close as (
    select
        c.site_id,
        n.nc_id,
        n.severity,
        row_number() over (
            partition by c.site_id order by n.severity = 'major', n.raised_on nulls last, n.nc_id
        ) as nth,
        c.n_closes
    from chosen as c
    inner join site_nonconformities as n using (site_id)
    where
        c.n_closes > 0 and n.status = 'open'
        and n.severity in ('business_critical', 'critical', 'major')
),

closing_rows as (
    -- nothing changes until the last needed finding is closed (the thresholds are all or nothing)
    select
        f.site_id,
        f.nth as step,
        'close_finding' as action,
        f.nc_id as item,
        'close the open ' || replace(f.severity, '_', '-') || ' finding'
        || case when f.nth = f.n_closes
            then ': no open critical and at most 5 open majors lift the 6.0 floor and let controls reduce the '
                || 'score (METHODOLOGY §8.3-§8.4)'
            else ' (' || f.nth::varchar || ' of ' || f.n_closes::varchar || ' needed)' end as detail,
        null::double as points,
        case when f.nth = f.n_closes then e.score_after else s.final_score end as score_after
    from findings_to_close as f
    inner join scores as s using (site_id)
    inner join evaluated as e on e.site_id = f.site_id and e.k = 0 and e.close_findings
    where f.nth <= f.n_closes
),

control_rows_chosen as (
    select
        d.site_id,
        c.n_closes + d.k as step,
        'add_control' as action,
        d.control_id as item,
        'put the control in place: +' || d.points::varchar || ' of ' || t.available_points::varchar
        || ' available points -> management controls ' || e.mc_rounded::varchar as detail,
        d.points,
        e.score_after
    from candidates as d
    inner join chosen as c on c.site_id = d.site_id and d.k <= c.k
    inner join totals as t on t.site_id = d.site_id
    inner join evaluated as e on e.site_id = d.site_id and e.k = d.k and e.close_findings = c.close_findings
),

stuck_rows as (
    select
        s.site_id,
        1 as step,
        'none' as action,
        null as item,
        'no set of controls and closed findings moves it below ' || s.category_calculated || ': the best reachable '
        || 'is ' || min(e.score_after)::varchar || ' (base ' || round(s.base, 4)::varchar || ')' as detail,
        null::double as points,
        min(e.score_after) as score_after
    from scores as s
    inner join category_rank as r on r.category = s.category_calculated
    left join evaluated as e using (site_id)
    where r.category_rank > 1 and s.base is not null and s.site_id not in (select site_id from chosen)
    group by s.site_id, s.category_calculated, s.base
),

unioned as (
    select * from closing_rows
    union all select * from control_rows_chosen
    union all select * from stuck_rows
),

final as (
    select
        $edition::integer as edition,
        u.site_id,
        u.step::integer as step,
        u.action,
        u.item,
        u.detail,
        u.points,
        u.score_after,
        score_category(u.score_after) as category_after,
        $methodology_version::varchar as methodology_version
    from unioned as u
)

select * from final
order by site_id, step
