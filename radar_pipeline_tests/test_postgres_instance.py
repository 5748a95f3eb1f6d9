"""The documented PostgreSQL instance (dagster-postgres.yaml) against a real local server.

Needs DAGSTER_PG_HOST etc. (`eval "$(bench/pg.sh start)"`); .ci/run starts one when
CI=true. Skips without a server on a developer machine, fails in CI.
"""
from __future__ import annotations

import os
import shutil
import uuid

import dagster as dg
import pytest

from radar_pipeline.cli.runs import refresh_edition, score_sites
from radar_pipeline.platform import settings
from radar_pipeline.platform.partitions import sites as sites_partitions
from radar_pipeline.platform.warehouse import connect
from radar_pipeline.sites import store
from radar_pipeline.sites.generate import generate_sites, write_sites

pytestmark = pytest.mark.slow  # a PostgreSQL server: `python -m pytest -m slow`


@pytest.fixture
def pg_instance(tmp_path, monkeypatch):
    if not os.environ.get("DAGSTER_PG_HOST"):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but no PostgreSQL server: .ci/run must start one (bench/pg.sh start)")
        pytest.skip("no PostgreSQL server (set DAGSTER_PG_* e.g. via `eval \"$(bench/pg.sh start)\"`)")
    monkeypatch.setenv("DAGSTER_PG_DB", os.environ.get("DAGSTER_PG_DB", "dagster"))
    monkeypatch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(settings.REPO_DIR / "dagster-postgres.yaml", home / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(home))
    yield instance
    instance.dispose()


def test_scoring_many_site_partitions_in_one_run_on_postgres(pg_instance, tmp_path, monkeypatch):
    from dagster._core.storage.runs.sql_run_storage import SqlRunStorage

    assert type(pg_instance.run_storage).__name__ == "PostgresRunStorage"
    assert isinstance(pg_instance.run_storage, SqlRunStorage)
    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(settings.SAMPLE_MIRROR_DIR))
    monkeypatch.setenv("RADAR_USER_FILES", str(tmp_path / "user"))
    warehouse = tmp_path / "w.duckdb"
    assert refresh_edition(2024, warehouse=warehouse, instance=pg_instance).success

    con = connect(warehouse)
    countries = [r[0] for r in con.sql("select iso3 from countries").fetchall()]
    classes = [r[0] for r in con.sql("select code from isic where level = 'class'").fetchall()]
    sites_file = tmp_path / "sites.jsonl"
    # a unique seed: the shared test database keeps earlier runs' partitions
    df = generate_sites(2000, uuid.uuid4().int % 10**9, countries, classes)
    write_sites(df, sites_file)
    summary = store.ingest(con, sites_file)
    con.close()

    outcome = score_sites(summary.to_score, edition=2024, warehouse=warehouse, instance=pg_instance)
    assert outcome.success, outcome.failures
    runs = pg_instance.get_runs(filters=dg.RunsFilter(job_name="score_sites"), limit=1)
    assert len(runs) == 1  # one run, not one per site
    status = pg_instance.get_status_by_partition(
        dg.AssetKey("site_scores"), summary.to_score, sites_partitions)
    assert status is not None and len(status) == 2000
    assert {str(s) for s in status.values()} == {"AssetPartitionStatus.MATERIALIZED"}
    con = connect(warehouse, read_only=True)
    n = con.sql("select count(*) from site_scores where final_score is not null").fetchall()[0][0]
    con.close()
    assert n == 2000
