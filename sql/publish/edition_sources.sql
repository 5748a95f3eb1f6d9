-- edition_sources: which publisher vintage each edition read (METHODOLOGY §1, "as of the
-- edition"), so a reader sees when an old edition had to use a file released after it.
-- Inputs: edition_sources. Output: one row per (edition, source, vintage).

with

edition_sources as (
    select * from edition_sources
),

final as (
    select
        edition,
        source,
        vintage,
        release_year,
        released_after_edition,
        nullif(indicators, '') as indicators,
        rule,
        left_out,
        methodology_version
    from edition_sources
)

select * from final
order by edition, source, vintage
