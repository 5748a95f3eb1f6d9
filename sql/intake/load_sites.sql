-- The native intake's sites into the in-memory scoring connection of `radar score` (never the
-- warehouse), as _load_parts puts the line-exact reader's there (radar_pipeline/sites/score_file.py):
-- in line order, no content hash (`radar score` stores nothing), the file's name and each site's
-- line, countries and ISIC codes as the fast path resolves them (intake_places: native.py). The rows
-- of controls and findings keep the file's order without a sort (insertion order is preserved
-- through unnest).
-- site_saq is loaded by native.py (one column per question of rules/saq_fields.csv).
insert into sites by name
select
    lines.site_id,
    lines.site_name,
    places.iso3,
    places.isic_code,
    places.isic_level,
    case when places.isic_level = 'class' then places.isic_code end as isic_class,
    getvariable('intake_file_name') as source_file,
    lines.line as source_line,
    null::varchar as content_hash,
    getvariable('intake_now') as updated_at
from intake_lines as lines
inner join intake_places as places on lines.country = places.country and lines.isic = places.isic
order by lines.line;

-- a control listed twice on a line is one row (its first), as on the other paths. A view over the
-- read file rather than a copy: 1M sites claim ~8M controls, ~1 s to copy, ~0.5 s more for the
-- scoring to read through the view (bench/README.md, issue 24).
drop table site_controls;
create temp view site_controls as
select
    r.site_id,
    unnest(list_transform(
        -- the positions of each id's first listing, then the ids at them
        list_filter(
            generate_series(1, len(r.controls)), lambda i: list_position(r.controls, r.controls[i]) = i  -- noqa: RF03
        ),
        lambda i: r.controls[i]  -- noqa: RF03
    )) as control_id
from intake_read as r;

insert into site_nonconformities by name
with findings as (
    select
        lines.site_id,
        unnest(lines.audits) as finding
    from intake_lines as lines
)

select
    findings.site_id,
    findings.finding.nc_id,
    findings.finding.severity,
    findings.finding.status,
    intake_date(findings.finding.raised_on) as raised_on,
    intake_date(findings.finding.closed_on) as closed_on
from findings;
