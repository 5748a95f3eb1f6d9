import os

import dagster as dg

from radar_pipeline.platform.run_settings import first_edition

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


# --- registering site partitions (the CLI's runs and the inbox sensor share these) ------------

# Partition keys registered per add_dynamic_partitions call: the sqlite instance binds one
# SQL variable per key and fails somewhere between 249k and 251k keys in one call.
PARTITION_CHUNK = int(os.environ.get("RADAR_PARTITION_CHUNK", "10000"))
# ms per site partition of a scoring run on the sqlite instance (bench/README.md): with the project's
# storage (radar_pipeline/platform/instance_storage.py) and the two event settings of .env, the events
# after each run's body (0.28-0.31 ms measured by bench_ingest_postgres.py --sites 100000 --instance
# sqlite, 2026-12-07, after the events' JSON came from a template; 0.36-0.44 ms before); with Dagster's
# own sqlite storage, which writes event by event (bench_partitions.py)
SQLITE_MS_PER_PARTITION = 0.3
SQLITE_MS_PER_PARTITION_UNBATCHED = 27.0
_EVENT_SETTINGS = ("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1", "DAGSTER_EVENT_BATCH_SIZE=1000")


def is_sqlite_instance(instance: dg.DagsterInstance) -> bool:
    """The default instance (dagster.yaml) keeps its event log in sqlite (in memory when ephemeral)."""
    name = type(instance.event_log_storage).__name__.lower()
    return "sqlite" in name or "inmemory" in name


def writes_events_in_batches(instance: dg.DagsterInstance) -> bool:
    """On the sqlite instance, this process writes a run's partition events in batches: the
    project's sqlite storage and DAGSTER_EVENT_BATCH_SIZE set."""
    from radar_pipeline.platform.instance_storage import BatchingSqliteEventLogStorage

    return (isinstance(instance.event_log_storage, BatchingSqliteEventLogStorage)
            and int(os.environ.get("DAGSTER_EVENT_BATCH_SIZE") or 0) > 0)


def sqlite_partition_warning(instance: dg.DagsterInstance, n_partitions: int) -> str | None:
    """The message to show before a run over `n_partitions` site partitions on the sqlite
    instance when there are more than RADAR_SQLITE_PARTITION_WARN (default 50k); None otherwise."""
    limit = int(os.environ.get("RADAR_SQLITE_PARTITION_WARN", "50000"))
    if n_partitions <= limit or not is_sqlite_instance(instance):
        return None
    switch = ("For a long-lived deployment with many sites use PostgreSQL: copy dagster-postgres.yaml "
              "to $DAGSTER_HOME/dagster.yaml and set DAGSTER_PG_* (or `eval \"$(bench/pg.sh start)\"`) "
              "(README, 'Dagster instance').")
    if writes_events_in_batches(instance):
        return (f"{n_partitions} site partitions on the sqlite Dagster instance: its event writes take about "
                f"{_duration(n_partitions * SQLITE_MS_PER_PARTITION)} at the measured {SQLITE_MS_PER_PARTITION:g} "
                f"ms per partition (bench/README.md). {switch} Continuing on sqlite.")
    return (f"{n_partitions} site partitions on the sqlite Dagster instance, written event by event: about "
            f"{_duration(n_partitions * SQLITE_MS_PER_PARTITION_UNBATCHED)} at the measured "
            f"{SQLITE_MS_PER_PARTITION_UNBATCHED:g} ms per partition "
            f"(bench/README.md). {SQLITE_MS_PER_PARTITION:g} ms with the project's dagster.yaml storage "
            f"(radar_pipeline.platform.instance_storage) and {' '.join(_EVENT_SETTINGS)} in the environment. "
            f"{switch} Continuing on sqlite.")


def _duration(ms: float) -> str:
    """'40 s' under two minutes (100k partitions at 0.3 ms once read 'about 0 min'), else minutes."""
    return f"{ms / 1000:.0f} s" if ms < 120_000 else f"{ms / 60_000:.0f} min"


def add_site_partitions(instance: dg.DagsterInstance, keys: list[str], chunk: int | None = None) -> None:
    """Register site partitions in calls of at most RADAR_PARTITION_CHUNK keys (any number works)."""
    chunk = chunk or PARTITION_CHUNK
    for i in range(0, len(keys), chunk):
        instance.add_dynamic_partitions(sites.name, keys[i:i + chunk])
