"""A source asset through Dagster (country_risk/assets.py build_source_asset): its blocking check
passes with the rows written, or fails with the reason and leaves the source's previous slice.
The clash check and the write share one warehouse connection (issue 24 item 3): a clash must
still be refused before anything is written."""
from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from radar_pipeline.platform import settings
from radar_pipeline.platform.warehouse import DuckDBWarehouse


def _user_rows(wh: Path) -> list[tuple]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.sql("select indicator_id, iso3, data_year, value, file from indicator_observations "
                       "where edition = 2024 and source = 'user' order by all").fetchall()
    finally:
        con.close()


def _materialize_user(wh: Path, mirror: Path, tmp_path: Path, monkeypatch) -> dg.ExecuteInProcessResult:
    from radar_pipeline.country_risk.assets import source_assets

    [user] = [a for a in source_assets if a.key.path[-1] == "user_observations"]
    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(mirror))
    monkeypatch.setenv("RADAR_USER_FILES", str(tmp_path / "no-user-files"))
    return dg.materialize([user], partition_key="2024", raise_on_error=False,
                          resources={"warehouse": DuckDBWarehouse(database=str(wh))})


@pytest.fixture
def copies(sample_edition_2024: Path, tmp_path: Path) -> tuple[Path, Path]:
    wh = tmp_path / "w.duckdb"
    shutil.copy(sample_edition_2024, wh)
    mirror = tmp_path / "mirror"
    shutil.copytree(settings.SAMPLE_MIRROR_DIR, mirror)
    return wh, mirror


def test_source_asset_writes_its_rows_and_passes_its_check(copies, tmp_path, monkeypatch):
    wh, mirror = copies
    before = _user_rows(wh)
    (mirror / "user" / "2024" / "ilo_weekly_hours.csv").write_text(
        "iso3,indicator_id,year,value\nDNK,ilo_weekly_hours,2023,35.5\n", encoding="utf-8")
    result = _materialize_user(wh, mirror, tmp_path, monkeypatch)
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["rows"].value == 1
    assert _user_rows(wh) == [("ilo_weekly_hours", "DNK", 2023, 35.5, "ilo_weekly_hours.csv")] != before
    [mat] = result.get_asset_materialization_events()
    assert mat.materialization.metadata["dagster/row_count"].value == 1


def test_source_asset_refuses_a_clash_before_writing(copies, tmp_path, monkeypatch):
    wh, mirror = copies
    before = _user_rows(wh)
    assert before  # the sample's user file: these rows must survive the failed run
    con = duckdb.connect(str(wh), read_only=True)
    iso3, year = con.sql("select iso3, data_year from indicator_observations where edition = 2024 "
                         "and source = 'ti_cpi' and indicator_id = 'ti_cpi_score' order by all limit 1").fetchall()[0]
    con.close()
    (mirror / "user" / "2024" / "clash.csv").write_text(
        f"iso3,indicator_id,year,value\n{iso3},ti_cpi_score,{year},50\n", encoding="utf-8")
    result = _materialize_user(wh, mirror, tmp_path, monkeypatch)
    assert not result.success
    checks = result.get_asset_check_evaluations()  # one per attempt (the asset's retry policy)
    assert checks and not any(c.passed for c in checks)
    error = checks[-1].metadata["error"].value
    assert "clash.csv" in error and "ti_cpi" in error, error
    assert not result.get_asset_materialization_events()
    assert _user_rows(wh) == before


def test_source_asset_opens_the_warehouse_once_after_parsing(copies, tmp_path, monkeypatch):
    """One connection per source step, opened when the parsed rows need the country universe:
    fetching and parsing the publisher's files never hold the warehouse file's lock (a live
    download can take minutes; sensors and readers wait on that lock)."""
    from contextlib import contextmanager

    from radar_pipeline.country_risk.assets import source_assets
    from radar_pipeline.sources import registry

    wh, mirror = copies
    log: list[str] = []
    real_parse = registry.parse_all

    def parse_all(*a, **k):
        log.append("parse")
        return real_parse(*a, **k)
    monkeypatch.setattr(registry, "parse_all", parse_all)

    class Counting(DuckDBWarehouse):
        @contextmanager
        def get_connection(self, read_only: bool = False, wait_seconds: float | None = None):
            log.append("open")
            with super().get_connection(read_only=read_only, wait_seconds=wait_seconds) as con:
                yield con
            log.append("close")

    [cpi] = [a for a in source_assets if a.key.path[-1] == "ti_cpi_observations"]
    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(mirror))
    result = dg.materialize([cpi], partition_key="2024", resources={"warehouse": Counting(database=str(wh))})
    assert result.success
    assert log == ["parse", "open", "close"]
    [mat] = result.get_asset_materialization_events()
    assert mat.materialization.metadata["dagster/row_count"].value > 0


def test_source_asset_without_countries_fails_naming_them(tmp_path, monkeypatch):
    """The universe is read after parsing now: an edition without countries still fails with the
    reason, and writes nothing."""
    from radar_pipeline.country_risk.assets import source_assets

    wh = tmp_path / "empty.duckdb"
    [cpi] = [a for a in source_assets if a.key.path[-1] == "ti_cpi_observations"]
    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(settings.SAMPLE_MIRROR_DIR))
    result = dg.materialize([cpi], partition_key="2024", raise_on_error=False,
                            resources={"warehouse": DuckDBWarehouse(database=str(wh))})
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "edition 2024 has no countries" in failure.step_failure_data.error.message
    con = duckdb.connect(str(wh), read_only=True)
    try:
        assert con.sql("select count(*) from indicator_observations").fetchall() == [(0,)]
    finally:
        con.close()
