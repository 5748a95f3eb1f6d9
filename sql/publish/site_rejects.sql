-- site_rejects: site file lines that were rejected at intake, with the reason.
-- Inputs: site_rejects.

with

site_rejects as (
    select * from site_rejects
),

final as (
    select file, file_sha256, line, site_id, field, reason, received_at, resolved_at, methodology_version
    from site_rejects
)

select * from final
order by received_at, file, line
