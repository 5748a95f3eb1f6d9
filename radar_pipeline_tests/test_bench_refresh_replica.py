"""bench/bench_refresh.py's replica: the refresh job's graph with every step a no-op, which the bench
runs to tell Dagster's per-step cost from the steps' own work. It is only a fair measure while it
has the refresh's steps, asset keys, checks and pools, and emits what they emit per asset."""
from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg

REPO_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_DIR / "bench"))

import bench_refresh  # noqa: E402

from radar_pipeline.platform import lake  # noqa: E402


def _plan(job) -> dict:
    from dagster._core.execution.api import create_execution_plan

    plan = create_execution_plan(job, run_config={})
    # output names differ (a single-asset op's is "result", a multi_asset's the key): their number counts
    return {k: len(plan.get_step_by_key(k).step_outputs) for k in plan.step_keys_to_execute}


def test_the_replica_has_the_refresh_jobs_steps_checks_and_pools():
    from radar_pipeline.definitions import defs

    real = defs.resolve_job_def("refresh_edition")
    replica = bench_refresh.replica_job()
    assert _plan(replica) == _plan(real)
    graph, real_graph = replica.asset_layer.asset_graph, real.asset_layer.asset_graph
    assert set(graph.get_all_asset_keys()) == set(real_graph.get_all_asset_keys())
    assert set(graph.asset_check_keys) == set(real_graph.asset_check_keys)
    for key in real_graph.get_all_asset_keys():
        assert graph.get(key).parent_keys == real_graph.get(key).parent_keys, key
        assert graph.get(key).partitions_def == real_graph.get(key).partitions_def, key
    pools = {ad.node_def.name: ad.node_def.pool for ad in graph.assets_defs if ad.keys}
    assert pools == {ad.node_def.name: ad.node_def.pool for ad in real_graph.assets_defs if ad.keys}
    assert lake.POOL in pools.values()  # the pool whose limit the replica's worker sets, as the refresh does


def test_the_replica_materializes_every_asset_and_passes_every_check_once():
    replica = bench_refresh.replica_job()
    with dg.DagsterInstance.ephemeral() as instance:
        result = replica.execute_in_process(partition_key="2024", instance=instance)
        assert result.success
        keys = [e.asset_key for e in result.get_asset_materialization_events()]
        assert sorted(keys) == sorted(replica.asset_layer.asset_graph.get_all_asset_keys())
        checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        assert len(checks) == len(replica.asset_layer.asset_graph.asset_check_keys)
        assert all(c.passed for c in checks)
