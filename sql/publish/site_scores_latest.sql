-- site_scores_latest: each site's score in the latest edition it was scored for, with the
-- same columns as site_scores_history (previous edition and change included).
-- Input: site_scores_history as just published (build.py builds it first).
-- One row per site_id.

with

history as (
    select * from site_scores_history
)

select *
from history
qualify row_number() over (partition by site_id order by edition desc) = 1
order by site_id
