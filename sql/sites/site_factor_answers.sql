-- One row per ANSWERED (site in scope, SAQ factor) (METHODOLOGY §6): the answer, the level
-- the rule table gives it and its points. Unanswered factors have no row: per site they are
-- n_factors - answered (site_scores) and the explanation grid adds them (site_factor_points).
-- Sparse on purpose: at 1M sites the site x factor grid is 29M rows, the answers are ~27M,
-- and everything here is one pass over site_saq with hash joins against tiny rule tables
-- (no window or group by over site x factor).
-- Sites are carried by score_scope's integer site_key: hashing and grouping an integer is
-- far cheaper than the text site_id over ~27M rows. site_saq is read in two separate places
-- (not through one shared CTE): DuckDB materialises a CTE referenced twice, i.e. all answers.
-- Tables: score_scope(site_key, site_id), site_saq (long answers; one row per site and field,
-- one of value_num / value_bool / value_text set — the intake guarantees both), saq_factors
-- (rule bands with points). No parameters.
with

rules as (
    select
        row_number() over (order by factor, kind, level, band_min, band_max, match_value) as rule_id,
        *
    from saq_factors
),

-- one row per factor: which answer (and, for ratios, which denominator) it reads, and an
-- integer id for the joins below
factors as (
    select
        row_number() over (order by factor)::integer as factor_id,
        factor,
        field,
        denominator_field
    from (
        select factor, any_value(field) as field, any_value(denominator_field) as denominator_field
        from rules
        group by factor
    )
),

-- which bands an answer is compared with, as one integer: factor_id * 8 + the value's kind
-- (0 boolean false, 1 boolean true, 2 enum — then also matched on the text —, 3 number,
-- 4 ratio, 5 ratio with a zero denominator)
kind_codes as (
    select * from (
        values ('boolean', 0), ('enum', 2), ('number', 3), ('ratio', 4), ('ratio_zero_denominator', 5)
    ) as t(kind, code)
),

-- Bands of a factor should not overlap; if an edited table makes them, the riskier band wins.
-- That is resolved here, on the tiny rule table, so that every answer matches at most one
-- band below (and needs no per-site ranking). boolean / enum: the riskiest band per value.
keyed_bands as (
    select
        factor,
        kind,
        -- a boolean band matches true when match_value is 'true' (any case), false otherwise
        case kind when 'boolean' then (lower(match_value) = 'true')::varchar else match_value end as match_key,
        level,
        points
    from rules
    where kind in ('boolean', 'enum')
    qualify row_number() over (partition by factor, kind, match_key order by points desc, level) = 1
),

-- numeric kinds: cut the line at every band edge into elementary pieces (each edge itself and
-- the open interval between neighbouring edges), give each piece the riskiest band covering
-- it, then glue neighbouring pieces won by the same band back together. For a table without
-- overlaps this gives back exactly its own bands.
numeric_rules as (
    select rule_id, factor, kind, band_min, min_inclusive, band_max, max_inclusive, level, points
    from rules
    where kind in ('number', 'ratio', 'ratio_zero_denominator')
),

edges as (
    select factor, kind, e, row_number() over (partition by factor, kind order by e) as r
    from (
        select distinct factor, kind, e
        from (
            select factor, kind, band_min as e from numeric_rules
            union all
            select factor, kind, band_max as e from numeric_rules
        )
        where e is not null
    )
),

-- ord orders the pieces along the line: 0 below the first edge, 2r-1 the r-th edge,
-- 2r the open interval above it; probe is a value inside the piece
pieces as (
    select factor, kind, 0 as ord, null::double as lo, false as lo_inc, e as hi, false as hi_inc,
           e - greatest(1, abs(e)) as probe
    from edges where r = 1
    union all
    -- (a union branch repeats values unnamed: the first branch names the columns)
    select factor, kind, 2 * r - 1, e, true, e, true, e  -- noqa: AL08
    from edges
    union all
    select factor, kind, 2 * r, e, false, nxt, false,
           case when nxt is null then e + greatest(1, abs(e)) else (e + nxt) / 2 end
    from (select *, lead(e) over (partition by factor, kind order by e) as nxt from edges)
    union all
    -- bands without any bound cover the whole line
    select distinct factor, kind, 0, null, false, null, false, 0.0
    from numeric_rules
    anti join edges using (factor, kind)
),

piece_winners as (
    select p.factor, p.kind, p.ord, p.lo, p.lo_inc, p.hi, p.hi_inc, n.rule_id, n.level, n.points
    from pieces as p
    inner join numeric_rules as n
        on n.factor = p.factor and n.kind = p.kind
        and (n.band_min is null or p.probe > n.band_min or (n.min_inclusive and p.probe = n.band_min))
        and (n.band_max is null or p.probe < n.band_max or (n.max_inclusive and p.probe = n.band_max))
    qualify row_number() over (partition by p.factor, p.kind, p.ord order by n.points desc, n.level) = 1
),

numeric_bands as (
    select
        factor,
        kind,
        '' as match_key,
        first(lo order by ord) as band_min,
        first(lo_inc order by ord) as min_inclusive,
        first(hi order by ord desc) as band_max,
        first(hi_inc order by ord desc) as max_inclusive,
        any_value(level) as level,
        any_value(points) as points
    from (
        -- consecutive pieces won by the same band share an island number
        select *, ord - row_number() over (partition by factor, kind, rule_id order by ord) as island
        from piece_winners
    )
    group by factor, kind, rule_id, island
),

bands as (
    select factor, kind, match_key, null::double as band_min, null::boolean as min_inclusive,
           null::double as band_max, null::boolean as max_inclusive, level, points
    from keyed_bands
    -- a band whose match_value is empty never matches (as a null comparison never does)
    where match_key is not null
    union all
    select factor, kind, match_key, band_min, min_inclusive, band_max, max_inclusive, level, points
    from numeric_bands
),

band_keys as (
    select
        f.factor_id * 8 + k.code + case when b.kind = 'boolean' and b.match_key = 'true' then 1 else 0 end
            as band_key,
        case when b.kind = 'enum' then b.match_key end as match_text,
        -- every band as the half-open [lo, hi): an exclusive lower bound starts at the next
        -- double above it, an inclusive upper bound ends at the next double above it — so
        -- the join compares twice per candidate, with no null or inclusivity branches
        case
            when b.band_min is null then '-infinity'::double
            when b.min_inclusive then b.band_min
            else nextafter(b.band_min, 'infinity'::double)
        end as lo,
        case
            when b.band_max is null then 'infinity'::double
            when b.max_inclusive then nextafter(b.band_max, 'infinity'::double)
            else b.band_max
        end as hi,
        b.level,
        b.points
    from bands as b
    inner join factors as f using (factor)
    inner join kind_codes as k using (kind)
),

-- each answered (site, factor) with the value its bands read:
-- plain factors read their own answer (kind from the answer's type) ...
plain_answered as (
    select
        s.site_key,
        f.factor_id,
        a.value_num,
        a.value_bool,
        a.value_text,
        null::double as denominator_num,
        null::double as ratio,
        f.factor_id * 8 + case
            when a.value_num is not null then 3
            when a.value_bool then 1
            when not a.value_bool then 0
            else 2
        end as band_key,
        -- boolean and enum bands span the whole line: any finite x passes the range test
        coalesce(a.value_num, 0) as x
    from site_saq as a
    inner join factors as f on f.field = a.field and f.denominator_field is null
    inner join score_scope as s on s.site_id = a.site_id
    where a.value_num is not null or a.value_bool is not null or a.value_text is not null
),

-- ... ratio factors read women workers share / managers (supervisors) share, and need both
-- (a lone answer is still "unanswered"). ratio: the ratio, rounded so 45/15 style ratios land
-- exactly on band edges; ratio_zero_denominator: the workers share, only when the
-- denominator share is 0.
ratio_fields as (
    select field from factors where denominator_field is not null
    union
    select denominator_field from factors where denominator_field is not null
),

ratio_answers as (
    select s.site_key, a.field, a.value_num
    from site_saq as a
    semi join ratio_fields using (field)
    inner join score_scope as s on s.site_id = a.site_id
    where a.value_num is not null
),

ratio_answered as (
    select
        n.site_key,
        f.factor_id,
        n.value_num,
        null::boolean as value_bool,
        null::varchar as value_text,
        d.value_num as denominator_num,
        case when d.value_num > 0 then round(n.value_num / d.value_num, 9) end as ratio,
        f.factor_id * 8 + case when d.value_num > 0 then 4 when d.value_num = 0 then 5 end as band_key,
        case when d.value_num > 0 then round(n.value_num / d.value_num, 9)
             when d.value_num = 0 then n.value_num end as x
    from factors as f
    inner join ratio_answers as n on n.field = f.field
    inner join ratio_answers as d on d.site_key = n.site_key and d.field = f.denominator_field
    where f.denominator_field is not null
),

answered as (
    select * from plain_answered
    union all
    select * from ratio_answered
),

-- at most one band matches (overlaps resolved above); bounds are inclusive or exclusive
-- per band, exactly as the rule table says
final as (
    select
        a.site_key,
        a.factor_id,
        a.value_num,
        a.value_bool,
        a.value_text,
        a.denominator_num,
        a.ratio,
        -- an answered question that no band lists carries no risk signal
        coalesce(b.level, 'none') as level,
        coalesce(b.points, 0)::double as points
    from answered as a
    left join band_keys as b
        on b.band_key = a.band_key
        and (b.match_text is null or b.match_text = a.value_text)
        and a.x >= b.lo and a.x < b.hi
)

select * from final
