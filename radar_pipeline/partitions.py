import dagster as dg

# One partition per methodology edition (refresh year). end_offset=1 makes
# the current year's edition available before the year is over: the annual
# schedule refreshes it as soon as publishers release.
editions = dg.TimeWindowPartitionsDefinition(
    cron_schedule="0 0 1 1 *", start="2018", fmt="%Y", end_offset=1,
)

# One partition per supplier site: each site's score has its own history and
# re-run button. Keys are site_ids (validated: 1-64 chars of A-Za-z0-9._-).
sites = dg.DynamicPartitionsDefinition(name="sites")
