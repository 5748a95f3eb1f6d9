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


def _materializations(tmp_path) -> tuple[BatchingSqliteEventLogStorage, list]:
    """A real run's partition materializations (from the batching storage) and that storage."""
    with _instance(tmp_path / "home", batching=True) as instance:
        run_id = _runs(instance)[0]
        events = [e for e in instance.all_logs(run_id)
                  if e.dagster_event and e.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
                  and e.dagster_event.partition]
        return instance.event_log_storage, events


def _with(event, *, partition=None, tags=None, metadata=None, timestamp=None, run_id=None):
    de = event.dagster_event
    data = de.event_specific_data
    m = data.materialization._replace(**{k: v for k, v in (("partition", partition), ("tags", tags),
                                                           ("metadata", metadata)) if v is not None})
    return event._replace(dagster_event=de._replace(event_specific_data=data._replace(materialization=m)),
                          **({"timestamp": timestamp} if timestamp is not None else {}),
                          **({"run_id": run_id} if run_id is not None else {}))


def test_templated_rows_equal_dagsters_serialisation_event_by_event(tmp_path):
    """Issue 24 item 3: the batch's rows are filled into one serialised event (_RowTemplate);
    every row, JSON text included, must be the one Dagster's _event_to_row makes, and an event
    that differs anywhere but in timestamp, partition and tag values must not be templated."""
    from dagster._core.definitions.metadata import FloatMetadataValue, IntMetadataValue

    from radar_pipeline.platform.instance_storage import _RowTemplate

    storage, events = _materializations(tmp_path)
    assert len(events) == 80
    first, second = events[0], events[1]
    meta = first.dagster_event.event_specific_data.materialization.metadata
    assert set(meta) == {"sites_in_run"}
    tags = dict(first.dagster_event.event_specific_data.materialization.tags)
    odd = [
        _with(second, partition='S-"quoted"\\ü\n\u2028'),  # escapes in the filled-in values
        _with(second, tags={**tags, "dagster/data_version": "ünï\"cøde"}),
        _with(second, timestamp=second.timestamp + 1e-7),
        _with(second, timestamp=1e-05),  # repr with an exponent
    ]
    unlike = [
        # a record is a tuple: Int(80) == Float(80.0) as tuples, but they serialise differently
        _with(second, metadata={"sites_in_run": FloatMetadataValue(80.0)}),
        _with(second, metadata={"a": IntMetadataValue(1), "b": IntMetadataValue(2)}),
        _with(second, metadata={"b": IntMetadataValue(2), "a": IntMetadataValue(1)}),  # order kept by serdes
        _with(second, tags={**tags, "extra": "x"}),
        _with(second, tags={k: tags[k] for k in reversed(tags)}),
        _with(second, run_id="another-run"),
        first._replace(user_message="another message"),
        _with(second, tags={}),  # no tags: another shape ({} is not the template's keys)
    ]
    # built past the classes' checks (as _replace can): tags None serialise as null, not {}
    no_tags = _with(second, partition="S-none")
    no_tags = no_tags._replace(dagster_event=no_tags.dagster_event._replace(
        event_specific_data=no_tags.dagster_event.event_specific_data._replace(
            materialization=no_tags.dagster_event.event_specific_data.materialization._replace(tags=None))))
    unlike.append(no_tags)
    batch = [*events, *odd, *unlike]
    generic = [storage._event_to_row(e) for e in batch]
    template = _RowTemplate(storage, first)
    rows, fitted = template.rows(batch)
    assert rows == generic
    assert template.pieces is not None  # the fast path is taken for this real run...
    assert fitted == [True] * (len(events) + len(odd)) + [False] * len(unlike)  # ...and only where it fits
    # the asset_event_tags rows: Dagster's own, in its order
    ids = list(range(1000, 1000 + len(batch)))

    class Capture:
        def execute(self, statement, values):
            self.values = values

    dagsters = Capture()
    storage._store_asset_event_tags(dagsters, batch, ids)
    tag_rows = template.tag_rows(batch, ids, rows, fitted)
    assert tag_rows == dagsters.values
    # Dagster indexes the data version only: one row per event that has one (all but the two
    # without tags), the others' tags ("extra") not
    assert [r["key"] for r in tag_rows] == ["dagster/data_version"] * (len(batch) - 2)
    # a template without tags must not take an event whose tags are None (null, not {})
    empty = _with(first, tags={})
    pair = [empty, _with(no_tags, partition="S-other")]
    rows, fitted = _RowTemplate(storage, empty).rows(pair)
    assert rows == [storage._event_to_row(e) for e in pair] and fitted == [True, False]
    # a batch whose first event does not fit (no partition) is serialised by Dagster throughout
    unpartitioned = first._replace(dagster_event=first.dagster_event._replace(
        event_specific_data=first.dagster_event.event_specific_data._replace(
            materialization=first.dagster_event.event_specific_data.materialization._replace(partition=None))))
    template = _RowTemplate(storage, unpartitioned)
    assert template.pieces is None
    assert template.rows([unpartitioned, *events[:3]]) == (
        [storage._event_to_row(e) for e in [unpartitioned, *events[:3]]], [False] * 4)


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
        assert "about 2 min at the measured 0.3 ms per partition" in fast and "Continuing" in fast
        # under two minutes in seconds: 100k partitions once read "about 0 min"
        assert "about 30 s at the measured 0.3 ms per partition" in partitions.sqlite_partition_warning(radar, 100_000)
        slow = partitions.sqlite_partition_warning(plain, 400_000)
        assert "written event by event: about 180 min at the measured 27 ms" in slow
        assert "DAGSTER_EVENT_BATCH_SIZE=1000" in slow and "dagster-postgres.yaml" in slow
        monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE")
        assert "event by event" in partitions.sqlite_partition_warning(radar, 400_000)
        assert partitions.sqlite_partition_warning(radar, 50_000) is None


# ---- engines kept per shard (issue 24 item 3: `radar refresh` on its own instance) --------------

@dg.asset
def plain_asset():
    return dg.MaterializeResult(metadata={"rows": 1})


def _materialize(instance) -> str:
    result = dg.materialize([plain_asset], instance=instance)
    assert result.success
    return result.run_id


_OTHER_PROCESS = """
import sys
import dagster as dg
from radar_pipeline_tests.test_instance_storage import _materialize
with dg.DagsterInstance.from_config(sys.argv[1]) as instance:
    print(_materialize(instance))
"""


def test_kept_connections_neither_block_another_process_nor_hide_its_events(tmp_path):
    """The instance `radar` opens keeps a connection per shard between statements. Another process
    on the same DAGSTER_HOME (the daemon, the webserver, a second `radar`) must still write at once,
    and what it wrote must be seen by this process's next read: an idle kept connection holds no
    lock and no snapshot."""
    import subprocess
    import sys
    import time

    with _instance(tmp_path / "home", batching=True) as instance:
        storage = instance.event_log_storage
        mine = _materialize(instance)
        assert storage._engines(), "no engine kept: the test would prove nothing"
        # a read leaves the index shard's kept connection checked in, holding nothing
        assert instance.get_latest_materialization_event(plain_asset.key).run_id == mine
        started = time.monotonic()
        other = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, str(tmp_path / "home")],
                               capture_output=True, text=True, timeout=120)
        assert other.returncode == 0, other.stderr[-2000:]
        # the other process waited on no lock of ours (sqlite's busy timeout is 30 s)
        assert time.monotonic() - started < 25
        theirs = other.stdout.strip().splitlines()[-1]
        assert theirs != mine
        assert instance.get_latest_materialization_event(plain_asset.key).run_id == theirs
        assert [e.run_id for e in instance.fetch_materializations(plain_asset.key, limit=10).records] == [theirs, mine]
        # and this process writes after it, on its kept connections
        again = _materialize(instance)
        assert instance.get_latest_materialization_event(plain_asset.key).run_id == again


def test_kept_engines_are_bounded_and_wipe_and_dispose_close_them(tmp_path):
    """A process that reads or writes many runs (the webserver) keeps the index shard and the last
    ENGINES_KEPT run shards open, no more; every run stays readable. `wipe` deletes the run shards'
    files: a run written after it is stored in a new file, not in a deleted one still open."""
    from radar_pipeline.platform.instance_storage import ENGINES_KEPT

    with _instance(tmp_path / "home", batching=True) as instance:
        storage = instance.event_log_storage
        runs = [_materialize(instance) for _ in range(ENGINES_KEPT + 3)]
        assert set(storage._engines()) == {"index", *runs[-ENGINES_KEPT:]}
        for run_id in runs:  # the closed ones reopen on demand
            assert any(e.dagster_event and e.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
                       for e in instance.all_logs(run_id))
        assert len(storage._engines()) == ENGINES_KEPT + 1

        last = runs[-1]
        event = instance.all_logs(last)[0]
        storage.wipe()
        assert list(storage._engines()) == ["index"]
        shard = tmp_path / "home" / "history" / "runs" / f"{last}.db"
        assert not shard.exists()
        # an event of a run whose shard was open before the wipe goes to a new file on disk
        storage.store_event(event)
        assert shard.exists() and len(instance.all_logs(last)) == 1
        after = _materialize(instance)
        assert [e.run_id for e in instance.fetch_materializations(plain_asset.key, limit=10).records] == [after]
    assert storage._engines() == {}  # disposed with the instance


def test_a_forked_child_opens_its_own_connections(tmp_path):
    """sqlite connections must not cross a fork: a child forked after the parent stored events uses
    connections of its own (the engines are keyed by process id), and both processes' events land."""
    import multiprocessing

    with _instance(tmp_path / "home", batching=True) as instance:
        storage = instance.event_log_storage
        mine = _materialize(instance)
        assert storage._engines()
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()

        def child() -> None:
            inherited = len(storage._engines())  # the parent's dict, as the fork copied it
            queue.put((inherited, _materialize(instance)))

        proc = ctx.Process(target=child)
        proc.start()
        proc.join(120)
        assert proc.exitcode == 0
        inherited, theirs = queue.get(timeout=5)
        assert inherited == 0
        assert {e.run_id for e in instance.fetch_materializations(plain_asset.key, limit=10).records} == {mine, theirs}
        assert _materialize(instance)


def test_asset_key_columns_found_are_not_inspected_again(tmp_path, monkeypatch):
    """Dagster asks, for each asset record a step's data-version lookup reads, whether migrations
    added columns to asset_keys (a PRAGMA on a connection each time). A column found is remembered;
    a column not found is asked again (a migration may add it), and answers stay Dagster's."""
    with _instance(tmp_path / "home", batching=True) as instance:
        storage = instance.event_log_storage
        _materialize(instance)
        assert storage.has_asset_key_col("cached_status_data")
        assert storage.can_read_asset_status_cache() and storage.has_asset_key_index_cols()
        inspected = []
        parent = SqliteEventLogStorage._has_asset_key_col_on_connection
        monkeypatch.setattr(SqliteEventLogStorage, "_has_asset_key_col_on_connection",
                            lambda self, conn, name: inspected.append(name) or parent(self, conn, name))
        for _ in range(3):
            assert storage.has_asset_key_col("cached_status_data")
            assert instance.get_asset_records([plain_asset.key])[0].asset_entry.last_materialization
        assert inspected == []
        assert not storage.has_asset_key_col("no_such_column")
        assert not storage.has_asset_key_col("no_such_column")
        assert inspected == ["no_such_column", "no_such_column"]
