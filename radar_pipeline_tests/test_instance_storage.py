"""The batching sqlite storage (radar_pipeline/platform/instance_storage.py) must leave the instance
exactly as Dagster's own sqlite storage does: the same events in the run's log and in the
cross-run index, the same asset tags, the same latest materialization, the same partition
status. Only the number of transactions differs."""

import dagster as dg
import pytest
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from radar_pipeline.cli import dagster_home
from radar_pipeline.platform.instance_storage import BatchingSqliteEventLogStorage, RadarSqliteStorage
from radar_pipeline.platform.run_settings import instance_yaml

KEYS = [f"S-{i:03d}" for i in range(120)]
parts = dg.StaticPartitionsDefinition(KEYS)


@dg.asset(partitions_def=parts, backfill_policy=dg.BackfillPolicy.single_run(), code_version="v1")
def scored(context: dg.AssetExecutionContext):
    return dg.MaterializeResult(metadata={"sites_in_run": len(context.partition_keys)})


@dg.asset(deps=[scored])
def snapshot():
    return dg.MaterializeResult(metadata={"rows": 1})


def _instance(home, batching: bool) -> dg.DagsterInstance:
    home.mkdir()
    if batching:
        (home / "dagster.yaml").write_text(instance_yaml(home=home))
    return dg.DagsterInstance.from_config(str(home))


def _state(instance: dg.DagsterInstance, run_ids: list[str]) -> dict:
    key = dg.AssetKey("scored")
    records = instance.fetch_materializations(key, limit=1000, ascending=True).records
    latest = instance.get_latest_materialization_event(key)
    storage = instance.event_log_storage
    tags = sorted((r.partition_key, k, v) for r in records
                  for k, v in storage.get_event_tags_for_asset(key, filter_event_id=r.storage_id)[0].items())
    return {
        "index": [(r.partition_key, r.run_id, r.asset_materialization.metadata) for r in records],
        "tags": tags,
        "latest": (latest.dagster_event.partition, latest.run_id),
        "materialized": instance.get_materialized_partitions(key),
        "asset_record_run": instance.get_asset_records([key])[0].asset_entry.last_run_id,
        "run_logs": [[(e.dagster_event.event_type_value if e.dagster_event else None,
                       e.dagster_event.partition if e.dagster_event else None)
                      for e in instance.all_logs(run_id)] for run_id in run_ids],
        "snapshot": instance.get_latest_materialization_event(dg.AssetKey("snapshot")).run_id,
    }


def _runs(instance) -> list[str]:
    job = dg.define_asset_job("both", selection=[scored, snapshot]).resolve(
        asset_graph=dg.Definitions(assets=[scored, snapshot]).resolve_asset_graph())
    ids = []
    for first, last in (("S-000", "S-079"), ("S-040", "S-119")):  # overlapping ranges
        result = job.execute_in_process(instance=instance, tags={
            "dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last})
        assert result.success
        ids.append(result.run_id)
    return ids


@pytest.mark.slow
def test_batched_writes_leave_the_instance_as_dagsters_own_sqlite_storage_does(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "50")  # batches of 50, 30 and 40 per run
    one_by_one: list[str] = []
    real_store_event = SqliteEventLogStorage.store_event

    def counting_store_event(self, event):
        if event.dagster_event and event.dagster_event.event_type_value == "ASSET_MATERIALIZATION":
            one_by_one.append(type(self).__name__)
        return real_store_event(self, event)

    monkeypatch.setattr(SqliteEventLogStorage, "store_event", counting_store_event)

    with _instance(tmp_path / "plain", batching=False) as plain, \
            _instance(tmp_path / "batching", batching=True) as batching:
        assert type(plain.event_log_storage) is SqliteEventLogStorage
        assert type(batching.event_log_storage) is BatchingSqliteEventLogStorage
        plain_state = _state(plain, plain_runs := _runs(plain))
        n_plain = len(one_by_one)
        one_by_one.clear()
        batching_state = _state(batching, batching_runs := _runs(batching))

    # the batching storage stored the 200 partition materializations without the one-by-one
    # path (only the unpartitioned `snapshot` materializations went that way), plain did not
    assert n_plain == 80 + 80 + 2 and one_by_one == ["BatchingSqliteEventLogStorage"] * 2
    # run ids differ between the instances; everything else must not
    for state, runs in ((plain_state, plain_runs), (batching_state, batching_runs)):
        state["index"] = [(p, runs.index(r), m) for p, r, m in state["index"]]
        state["latest"] = (state["latest"][0], runs.index(state["latest"][1]))
        state["asset_record_run"] = runs.index(state["asset_record_run"])
        state["snapshot"] = runs.index(state["snapshot"])
    assert batching_state == plain_state
    # Dagster emits a range's partitions in no set order: the latest is one of the 2nd run's
    assert len(batching_state["index"]) == 160 and batching_state["latest"][1] == 1
    assert batching_state["materialized"] == set(KEYS)
    assert {t[1] for t in batching_state["tags"]} == {"dagster/data_version"} and len(batching_state["tags"]) == 160


def test_radar_home_uses_the_batching_storage_and_upgrades_an_old_copy(tmp_path, monkeypatch):
    import yaml

    home = tmp_path / "home"
    home.mkdir()
    # a copy an earlier radar wrote: the project's file without its storage keys
    old = yaml.safe_load(instance_yaml(home=home))
    old.pop("storage")
    (home / "dagster.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    dagster_home()
    with dg.DagsterInstance.get() as instance:
        assert instance.get_ref().storage_data.class_name == RadarSqliteStorage.__name__
        assert type(instance.event_log_storage) is BatchingSqliteEventLogStorage
    # a file the user wrote is theirs: left alone
    mine = "telemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(mine)
    dagster_home()
    assert (home / "dagster.yaml").read_text() == mine


if __name__ == "__main__":
    pytest.main([__file__])


def test_sqlite_warning_predicts_with_the_rate_of_the_storage_in_use(tmp_path, monkeypatch):
    """Issue 10 item 2: the duration said before a big run on sqlite is the one this process
    will see: batched (the project's storage and DAGSTER_EVENT_BATCH_SIZE) or event by event."""
    from radar_pipeline.platform import partitions

    monkeypatch.setenv("RADAR_SQLITE_PARTITION_WARN", "50000")
    with _instance(tmp_path / "radar", batching=True) as radar, \
            _instance(tmp_path / "plain", batching=False) as plain:
        monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
        fast = partitions.sqlite_partition_warning(radar, 400_000)
        assert "about 3 min at the measured 0.4 ms per partition" in fast and "Continuing" in fast
        slow = partitions.sqlite_partition_warning(plain, 400_000)
        assert "written event by event: about 180 min at the measured 27 ms" in slow
        assert "DAGSTER_EVENT_BATCH_SIZE=1000" in slow and "dagster-postgres.yaml" in slow
        monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE")
        assert "event by event" in partitions.sqlite_partition_warning(radar, 400_000)
        assert partitions.sqlite_partition_warning(radar, 50_000) is None
