import dagster as dg

from radar_pipeline.run_settings import first_edition

# One partition per methodology edition (refresh year), from the first edition the data
# supports ([editions] first in radar.toml, default 2022: older editions lack whole topics in
# the packaged sample and fail). end_offset=1 makes the current year's edition available
# before the year is over: the annual schedule refreshes it after the spring releases.
editions = dg.TimeWindowPartitionsDefinition(
    cron_schedule="0 0 1 1 *", start=str(first_edition()), fmt="%Y", end_offset=1,
)

# One partition per supplier site: each site's score has its own history and
# re-run button. Keys are site_ids (validated: 1-64 chars of A-Za-z0-9._-).
sites = dg.DynamicPartitionsDefinition(name="sites")
