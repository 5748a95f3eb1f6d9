"""Shared fixtures.

`shared_sources` is the real publisher files folder (../shared/data/sources).
Tests that need it skip when it is absent on a developer machine, and fail in
CI (CI=true), where it must be present.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_SOURCES = Path(os.environ.get("RADAR_SHARED_SOURCES", REPO.parent / "shared" / "data" / "sources"))


# --------------------------------------------------------------------------- fast and slow suites
# `python -m pytest` with no test paths and no -m is the fast suite (the README's test command): the
# tests marked `slow` (end-to-end runs through Dagster, daemons, UI processes, kills, lakes,
# PostgreSQL, wheels) are deselected. `python -m pytest -m slow` runs them, `-m "slow or not slow"`
# everything; naming files or tests (`python -m pytest radar_pipeline_tests/test_lake.py`) runs
# what is named, slow or not. `.ci/run` runs both suites.

def _fast_suite_only(config) -> bool:
    return config.args_source == pytest.Config.ArgsSource.TESTPATHS and not config.option.markexpr


def pytest_collection_modifyitems(config, items) -> None:
    if not _fast_suite_only(config):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:  # a first line right after collection, -q included
        reporter.write_line(f"fast suite: {len(items)} tests, one dot each ({len(slow)} tests marked slow "
                            "left out: python -m pytest -m slow)")


@pytest.fixture(autouse=True)
def _parse_cache_of_the_session(tmp_path_factory, monkeypatch) -> None:
    """RADAR_CACHE (parsed side files kept between processes) in the session's temp folder, not
    in data/cache of the folder the tests run from; subprocesses inherit it."""
    monkeypatch.setenv("RADAR_CACHE", str(tmp_path_factory.getbasetemp() / "radar-cache"))


@pytest.fixture(scope="session")
def shared_sources() -> Path:
    if not SHARED_SOURCES.is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"real publisher files are required in CI but {SHARED_SOURCES} is missing")
        pytest.skip(f"real publisher files not found at {SHARED_SOURCES}")
    return SHARED_SOURCES


# --------------------------------------------------------------------------- DuckLake backend
# RADAR_TEST_BACKEND=lake runs the end-to-end tests that take their warehouse from
# `warehouse_target` on a DuckLake (catalog in the PostgreSQL of DAGSTER_PG_*, the one
# bench/pg.sh starts and .ci/run exports; data in the test's temp folder). test_lake.py always
# runs on the lake. Without a reachable PostgreSQL those tests skip, and fail in CI.

def lake_backend() -> bool:
    return os.environ.get("RADAR_TEST_BACKEND", "file").lower() == "lake"


def _pg_libpq() -> str | None:
    host = os.environ.get("DAGSTER_PG_HOST")
    if not host:
        return None
    parts = {"dbname": os.environ.get("DAGSTER_PG_DB", "dagster"), "host": host,
             "port": os.environ.get("DAGSTER_PG_PORT", "5432"), "user": os.environ.get("DAGSTER_PG_USER", "dagster")}
    if os.environ.get("DAGSTER_PG_PASSWORD"):
        parts["password"] = os.environ["DAGSTER_PG_PASSWORD"]
    return " ".join(f"{k}={v}" for k, v in parts.items())


@pytest.fixture(scope="session")
def lake_catalog() -> str:
    """libpq string of the PostgreSQL that holds the test lakes' catalogs (one schema per lake)."""
    libpq = _pg_libpq()
    problem = None if libpq else "DAGSTER_PG_HOST is not set (eval \"$(bash bench/pg.sh start)\")"
    if libpq:
        import psycopg2

        try:
            psycopg2.connect(libpq, connect_timeout=5).close()
        except psycopg2.OperationalError as exc:
            problem = f"PostgreSQL at {libpq} is not reachable: {exc}"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the DuckLake tests need PostgreSQL in CI: {problem}")
        pytest.skip(f"DuckLake tests need PostgreSQL: {problem}")
    return libpq


def make_lake_target(libpq: str, folder: Path, name: str) -> str:
    """A fresh lake: its own catalog schema in PostgreSQL, its Parquet files under `folder`."""
    import uuid

    return (f"ducklake:postgres:{libpq}?data_path={folder / (name + '-lake-data')}"
            f"&metadata_schema=radar_test_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def warehouse_target(request):
    """warehouse_target(folder, name): where a test's warehouse goes — `folder/name.duckdb`, or
    with RADAR_TEST_BACKEND=lake a fresh DuckLake (PostgreSQL catalog, data under `folder`)."""
    def make(folder: Path, name: str = "radar"):
        if not lake_backend():
            return folder / f"{name}.duckdb"
        return make_lake_target(request.getfixturevalue("lake_catalog"), folder, name)
    return make


@pytest.fixture(scope="session")
def sample_edition_2024(tmp_path_factory) -> Path:
    """Edition 2024 refreshed ONCE per session from the packaged sample mirror (no user files,
    no overrides). Site tests copy this file instead of each refreshing their own."""
    from radar_pipeline.cli.runs import refresh_edition
    from radar_pipeline.platform import settings

    tmp = tmp_path_factory.mktemp("sample2024")
    mp = pytest.MonkeyPatch()
    mp.setenv("RADAR_SOURCES_MIRROR", str(settings.SAMPLE_MIRROR_DIR))
    mp.setenv("RADAR_USER_FILES", str(tmp / "user"))
    mp.setenv("RADAR_OVERRIDES", str(tmp / "no-overrides"))
    try:
        path = tmp / "radar.duckdb"
        outcome = refresh_edition(2024, warehouse=path)
        assert outcome.success, outcome.failures
    finally:
        mp.undo()
    return path


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited and been reaped: what a killed ingest or publish
    leaves in the names of its temp files and folders."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
