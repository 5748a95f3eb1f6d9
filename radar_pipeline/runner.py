"""Old import path of the in-process job runners, kept for scripts and notebooks that use it:
they live in `radar_pipeline.cli.runs` (the top floor, beside the `radar` commands); the site
partition helpers in `radar_pipeline.partitions`."""
from radar_pipeline.cli.runs import (  # noqa: F401 (re-export)
    QUIET,
    RunOutcome,
    baseline,
    follow_data,
    publish_warehouse,
    reap_dead_runs,
    refresh_edition,
    rescore_all,
    root_message,
    score_sites,
)
from radar_pipeline.partitions import (  # noqa: F401 (re-export)
    PARTITION_CHUNK,
    add_site_partitions,
    is_sqlite_instance,
    sqlite_partition_warning,
)
