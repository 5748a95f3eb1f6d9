-- PROTOTYPE (not production): raw points / answered factors per site and control sums,
-- from aggregates instead of the site x factor and site x control grids.
create or replace temp table proto_site_points as
with
scope as (select distinct site_id from score_scope),
ans as (
    select q.site_id, q.field, q.value_num, q.value_bool, q.value_text
    from site_saq as q semi join scope using (site_id)
),
factors as (
    select factor, any_value(field) as field, any_value(denominator_field) as denominator_field
    from saq_factors group by factor
),
-- one row per answered (site, factor) with the value every kind reads
simple_in as (
    select a.site_id, f.factor, a.value_num as x, a.value_bool, a.value_text
    from ans a join factors f on f.field = a.field and f.denominator_field is null
    where coalesce(a.value_num::varchar, a.value_bool::varchar, a.value_text) is not null
),
shares as (
    select site_id,
        max(value_num) filter (where field = 'women_workers_pct') as w,
        max(value_num) filter (where field = 'women_managers_pct') as m,
        max(value_num) filter (where field = 'women_supervisors_pct') as s
    from ans where field in ('women_workers_pct', 'women_managers_pct', 'women_supervisors_pct')
    group by site_id
),
ratio_in as (
    select sh.site_id, f.factor, sh.w as num,
        case f.denominator_field when 'women_managers_pct' then sh.m else sh.s end as den
    from shares sh cross join factors f
    where f.denominator_field is not null
),
candidates as (
    select s.site_id, s.factor, r.points,
        case r.kind
            when 'boolean' then s.value_bool = (lower(r.match_value) = 'true')
            when 'enum' then s.value_text = r.match_value
            else s.x is not null
                and (r.band_min is null or (r.min_inclusive and s.x >= r.band_min) or (not r.min_inclusive and s.x > r.band_min))
                and (r.band_max is null or (r.max_inclusive and s.x <= r.band_max) or (not r.max_inclusive and s.x < r.band_max))
        end as hit
    from simple_in s join saq_factors r on r.factor = s.factor
    union all
    select i.site_id, i.factor, i.points,
        i.x is not null
            and (i.band_min is null or (i.min_inclusive and i.x >= i.band_min) or (not i.min_inclusive and i.x > i.band_min))
            and (i.band_max is null or (i.max_inclusive and i.x <= i.band_max) or (not i.max_inclusive and i.x < i.band_max))
    from (select i.site_id, i.factor, r.points, r.band_min, r.min_inclusive, r.band_max, r.max_inclusive,
                 case r.kind when 'ratio' then case when i.den > 0 then round(i.num / i.den, 9) end
                             else case when i.den = 0 then i.num end end as x
          from ratio_in i join saq_factors r on r.factor = i.factor
          where i.num is not null and i.den is not null) as i
),
per_factor as (
    select site_id, factor, coalesce(max(points) filter (where hit), 0) as pts
    from candidates group by site_id, factor
)
select site_id, sum(pts)::double as raw_points, count(*) as n_answered
from per_factor group by site_id;

create or replace temp table proto_site_controls as
with
scope as (select distinct site_id from score_scope),
cat as (select control_id, points, nullif(trim(applies_when), '') as applies_when from controls_catalogue),
always as (select sum(points) as pts from cat where applies_when is null),
yes as (select q.site_id, q.field from site_saq q semi join scope using (site_id) where q.value_bool),
avail_cond as (
    select y.site_id, sum(c.points) as pts from yes y join cat c on c.applies_when = y.field group by y.site_id
),
claimed as (select distinct c.site_id, c.control_id from site_controls c semi join scope using (site_id)),
achieved as (
    select cl.site_id, sum(c.points) as pts
    from claimed cl join cat c using (control_id)
    left join yes y on y.site_id = cl.site_id and y.field = c.applies_when
    where c.applies_when is null or y.field is not null
    group by cl.site_id
)
select s.site_id, coalesce(ac.pts, 0)::double + (select pts from always) as available_points,
       coalesce(a.pts, 0)::double as achieved_points
from scope s left join avail_cond ac using (site_id) left join achieved a using (site_id);
