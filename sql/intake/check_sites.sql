-- The lines of intake_lines (read_sites.sql) that break a rule msgspec's check of keys and types
-- does not cover (radar_pipeline/sites/intake/native.py builds the per-question checks from
-- rules/saq_fields.csv): the id rule, list sizes, the controls catalogue, severities and statuses,
-- a finding's id once per site, a site_id once per file. The rules are the fast path's
-- (radar_pipeline/sites/intake/fast.py); a line here sends the whole file to the line-exact reader,
-- which words the reject.
create or replace temp table intake_bad as
with limits as (
    select getvariable('intake_limits') as lim
),

lines as (
    select
        il.line,
        il.site_id,
        il.controls,
        il.audits,
        list_transform(il.audits, lambda x: x.nc_id) as nc_ids,
        list_transform(il.audits, lambda x: x.severity) as severities,
        list_transform(il.audits, lambda x: x.status) as statuses
    from intake_lines as il
),

broken as (
    select
        lines.line,
        case
            -- 1-64 characters of A-Z a-z 0-9 . _ -, not only dots (platform/identifiers.py)
            when not regexp_full_match(lines.site_id, '[A-Za-z0-9._-]{1,64}') then 'site_id'
            when regexp_full_match(lines.site_id, '[.]+') then 'site_id'
            when len(lines.controls) > limits.lim.items then 'controls'
            when len(lines.audits) > limits.lim.items then 'audits'
            -- up to 5 keys a finding: whether an absent date was given as null is not known here, so
            -- a line that could pass the cap on the findings' keys is left to the line-exact reader
            when len(lines.audits) * 5 > limits.lim.finding_keys then 'audits'
            when list_bool_or(list_transform(
                lines.controls, lambda x: not list_contains(getvariable('intake_controls'), x)
            )) then 'controls'
            when list_bool_or(list_transform(
                lines.severities, lambda x: not list_contains(getvariable('intake_severities'), x)
            )) then 'audits'
            when list_bool_or(list_transform(
                lines.statuses, lambda x: not list_contains(getvariable('intake_statuses'), x)
            )) then 'audits'
            when len(list_distinct(lines.nc_ids)) < len(lines.nc_ids) then 'audits'
        end as field
    from lines
    cross join limits
),

repeated as (
    select min(il.line) as line
    from intake_lines as il
    group by il.site_id
    having count(*) > 1
)

select
    broken.line,
    broken.field
from broken
where broken.field is not null
union all
select
    repeated.line,
    'site_id' as field
from repeated
