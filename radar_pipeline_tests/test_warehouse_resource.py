"""The warehouse resource is a dagster_duckdb.DuckDBResource extended for read-only and memory_limit
(issue 14 item 4), whose connections come from the project's one factory (warehouse.connect).
bench/bench_duckdb_resource.py measures why the base class's own get_connection cannot serve."""
from __future__ import annotations

import subprocess
import sys

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from radar_pipeline.platform.warehouse import DuckDBWarehouse, connect

OPEN_ELSEWHERE = ("import duckdb, sys\ntry:\n    duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'ro').close()\n"
                  "    print('opened')\nexcept duckdb.IOException as exc:\n    print('refused', exc)")


def other_process_opens(path, mode: str) -> str:
    return subprocess.run([sys.executable, "-c", OPEN_ELSEWHERE, str(path), mode], capture_output=True,
                          text=True, timeout=120).stdout.strip()


def test_is_a_duckdb_resource_with_memory_limit_and_connection_config(tmp_path):
    wh = DuckDBWarehouse(database=str(tmp_path / "wh.duckdb"), memory_limit="300MB",
                         connection_config={"threads": 1})
    assert isinstance(wh, DuckDBResource) and wh.path == wh.database
    with wh.get_connection() as con:
        limit, threads = con.sql("select current_setting('memory_limit'), current_setting('threads')").fetchall()[0]
        assert "MiB" in limit and float(limit.split()[0]) == pytest.approx(286.1, abs=1)  # 300 MB
        assert threads == 1
        assert con.sql("select count(*) from duckdb_tables() where table_name = 'site_scores'").fetchall()[0][0] == 1


def test_read_only_resource_never_takes_the_write_lock(tmp_path):
    path = tmp_path / "wh.duckdb"
    connect(path).close()
    with DuckDBWarehouse(database=str(path), read_only=True).get_connection() as con:
        assert other_process_opens(path, "ro") == "opened"  # readers side by side
        with pytest.raises(duckdb.InvalidInputException, match="read-only"):
            con.execute("create table t (x int)")


def test_a_failing_body_closes_its_connection(tmp_path):
    """The base class's generator has no try/finally: its connection (and the file's write lock)
    outlives a failing asset while the error is kept. Ours is closed."""
    path = tmp_path / "wh.duckdb"
    kept = []
    try:
        with DuckDBWarehouse(database=str(path)).get_connection() as con:
            con.execute("select 1")
            raise RuntimeError("asset failed")
    except RuntimeError as exc:
        kept.append(exc)
    assert other_process_opens(path, "rw") == "opened"


def test_launchpad_config_names_the_duckdb_resource_fields(tmp_path):
    @dg.asset
    def probe(warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
        with warehouse.get_connection() as con:
            limit = con.sql("select current_setting('memory_limit')").fetchall()[0][0]
        return dg.MaterializeResult(metadata={"database": warehouse.database, "memory_limit": limit})

    result = dg.materialize([probe], resources={"warehouse": DuckDBWarehouse()}, run_config={
        "resources": {"warehouse": {"config": {"database": str(tmp_path / "x.duckdb"), "memory_limit": "1GB"}}}})
    meta = result.asset_materializations_for_node("probe")[0].metadata
    assert meta["database"].value == str(tmp_path / "x.duckdb") and "MiB" in meta["memory_limit"].value


def test_a_run_opens_the_file_once_and_leaves_it_when_idle(tmp_path, monkeypatch):
    """Within a run the connections share one open database (a refresh opened the file 36 times,
    ~2.5 s); the run lets go of the file whenever it leaves it idle for IDLE_S (another process,
    or another run's step waiting on the file while this run waits for a pool slot, gets in), and
    at the end of the run. A read-only connection asked for inside the run works too."""
    import time

    from radar_pipeline.platform import warehouse

    path = tmp_path / "wh.duckdb"
    connect(path).close()
    opened: list[bool] = []
    real_open = warehouse._open
    monkeypatch.setattr(warehouse, "_open", lambda p, **k: opened.append(k["read_only"]) or real_open(p, **k))
    seen: dict[str, object] = {}

    @dg.asset
    def writes(warehouse: DuckDBWarehouse) -> None:
        for i in range(5):
            with warehouse.get_connection() as con:
                con.execute("create table if not exists t (i int)")
                con.execute("insert into t values ($i)", {"i": i})
        with warehouse.get_connection(read_only=True) as con:
            seen["rows"] = con.sql("select count(*) from t").fetchall()[0][0]
        time.sleep(warehouse_module_idle() * 4)
        seen["idle"] = other_process_opens(path, "ro")  # idle: released
        with warehouse.get_connection() as con:  # and opened again when needed
            con.execute("insert into t values (99)")

    def warehouse_module_idle() -> float:
        return warehouse.IDLE_S

    result = dg.materialize([writes], resources={"warehouse": DuckDBWarehouse(database=str(path))})
    assert result.success
    assert seen["rows"] == 5
    assert seen["idle"] == "opened"
    # 7 connections, two opens (before and after the idle spell; a third if a loaded machine
    # paused the loop for longer than IDLE_S), each read-write
    assert 2 <= len(opened) <= 3 and not any(opened)
    assert other_process_opens(path, "rw") == "opened"  # the run is over: the file is free
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.sql("select count(*) from t").fetchall()[0][0] == 6
    finally:
        con.close()


def test_a_run_raises_the_collectors_threshold_for_its_duration_and_restores_it(tmp_path):
    """Runs the daemon or the UI launch execute in a run worker, not through `radar`: the resource
    raises the collector's first threshold for the run (platform/collector.py: 18 full collections
    in a 100k-site ingest otherwise) and puts the process's own back when the run ends, ok or not."""
    import gc

    from radar_pipeline.platform.collector import GC_THRESHOLD0

    seen = []

    @dg.asset
    def probe(warehouse: DuckDBWarehouse) -> None:
        seen.append(gc.get_threshold())

    @dg.asset
    def fails(warehouse: DuckDBWarehouse) -> None:
        seen.append(gc.get_threshold())
        raise RuntimeError("boom")

    before = gc.get_threshold()
    gc.set_threshold(700, *before[1:])
    try:
        for asset in (probe, fails):
            dg.materialize([asset], resources={"warehouse": DuckDBWarehouse(database=str(tmp_path / "wh.duckdb"))},
                           raise_on_error=False)
            assert seen[-1] == (GC_THRESHOLD0, *before[1:])
            assert gc.get_threshold() == (700, *before[1:])
    finally:
        gc.set_threshold(*before)
