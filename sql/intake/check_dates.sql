-- Findings closed before they were raised (the fast path's rule). Dates are read by the
-- intake_date macro, which native.py has checked to read every date string of the file as the fast
-- path's polars parse does.
insert into intake_bad
with findings as (
    select
        lines.line,
        unnest(lines.audits) as finding
    from intake_lines as lines
)

select distinct
    findings.line,
    'audits' as field
from findings
where intake_date(findings.finding.closed_on) < intake_date(findings.finding.raised_on)
