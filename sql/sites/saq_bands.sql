-- The SAQ factor bands (METHODOLOGY §6) resolved into one row per band that an answer can
-- fall in, each numeric band as the half-open [lo, hi), with at most one band per answer.
-- Read by scoring.py, which turns every factor's bands into one CASE over the site's
-- columns of site_saq (one row per site, one typed column per saq_fields.csv field): DuckDB
-- cannot address a column by a name held in a row, and a per-column CASE on 1M rows costs
-- far less than unpivoting them into ~27M (site, answer) rows and joining those to the bands.
-- Tables: saq_factors (rule bands with points). No parameters.
-- Columns: band_id (1..n; 0 is reserved for "answered, no band": level none, 0 points; null on
-- the one row of a factor without any band),
-- factor_id (factors in name order), factor, field, denominator_field, kind (boolean | enum |
-- number | ratio | ratio_zero_denominator), match_text (boolean: 'true' / 'false'; enum: the
-- choice; null for numeric kinds), lo, hi, level, points.
with

rules as (
    select
        row_number() over (order by factor, kind, level, band_min, band_max, match_value) as rule_id,
        *
    from saq_factors
),

-- one row per factor: which answer (and, for ratios, which denominator) it reads
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

-- Bands of a factor should not overlap; if an edited table makes them, the riskier band wins.
-- That is resolved here, on the tiny rule table, so that every answer matches at most one
-- band (and needs no per-site ranking). boolean / enum: the riskiest band per value.
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
        null::varchar as match_key,
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

half_open as (
    select
        f.factor_id,
        f.factor,
        f.field,
        f.denominator_field,
        b.kind,
        b.match_key as match_text,
        -- every numeric band as the half-open [lo, hi): an exclusive lower bound starts at the
        -- next double above it, an inclusive upper bound ends at the next double above it — so
        -- an answer x is in the band when lo <= x < hi, with no null or inclusivity branches
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
        b.points::double as points
    from factors as f
    -- a factor none of whose rows makes a band (e.g. only empty match_values) keeps one row,
    -- kind null: it can be answered but never scores
    left join bands as b using (factor)
),

final as (
    select
        case when kind is not null
            then row_number() over (order by kind is null, factor_id, kind, match_text, lo)::integer
        end as band_id,
        *
    from half_open
)

select * from final
