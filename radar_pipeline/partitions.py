import dagster as dg

# One partition per methodology edition (refresh year). end_offset=1 makes
# the current year's edition available before the year is over: the annual
# schedule refreshes it as soon as publishers release.
editions = dg.TimeWindowPartitionsDefinition(
    cron_schedule="0 0 1 1 *", start="2018", fmt="%Y", end_offset=1,
)
