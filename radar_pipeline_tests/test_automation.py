"""What runs by itself: downstream work follows data whatever launched the upstream run,
the annual schedule, the new-vintage sensor, run settings from the launchpad, and every
edition the UI offers refreshes from the packaged sample with every ERROR check passing."""
from __future__ import annotations

import json
from datetime import datetime

import dagster as dg
import duckdb
import pytest

from radar_pipeline import automation
from radar_pipeline.cli.runs import QUIET, baseline, follow_data, refresh_edition, score_sites
from radar_pipeline.platform import run_settings, settings
from radar_pipeline.platform.partitions import editions
from radar_pipeline.platform.warehouse import connect
from radar_pipeline.sites import generate, store

N_SITES = 30


def published(path, sql):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Edition 2024 from the sample, 30 sites scored on it, one persistent instance."""
    tmp = tmp_path_factory.mktemp("automation")
    mp = pytest.MonkeyPatch()
    mp.setenv("RADAR_SOURCES_MIRROR", str(settings.SAMPLE_MIRROR_DIR))
    mp.setenv("RADAR_USER_FILES", str(tmp / "user"))
    mp.setenv("RADAR_PUBLISHED", str(tmp / "published" / "radar.duckdb"))
    mp.setenv("RADAR_BUYERS_INBOX", str(tmp / "buyers"))
    mp.setenv("RADAR_PICTURES", str(tmp / "pictures"))
    wh = tmp / "radar.duckdb"
    mp.setenv("RADAR_WAREHOUSE", str(wh))
    instance = dg.DagsterInstance.ephemeral()
    assert refresh_edition(2024, warehouse=wh, instance=instance).success
    with connect(wh) as con:
        countries = [r[0] for r in con.sql("select iso3 from countries").fetchall()]
        classes = [r[0] for r in con.sql("select code from isic where level = 'class'").fetchall()]
    generate.write_sites(generate.generate_sites(N_SITES, 3, countries, classes), tmp / "sites.jsonl")
    with connect(wh) as con:
        keys = store.ingest(con, tmp / "sites.jsonl").to_score
    assert score_sites(keys, warehouse=wh, instance=instance).success
    yield {"tmp": tmp, "wh": wh, "instance": instance, "keys": keys,
           "published": tmp / "published" / "radar.duckdb"}
    mp.undo()


def requested(instance, cursor):
    from radar_pipeline.definitions import defs

    result = dg.evaluate_automation_conditions(defs, instance, cursor=cursor)
    return result, {k: result.get_num_requested(dg.AssetKey(k)) for k in automation.FOLLOWS_DATA}


def assert_current(world, edition: int):
    """Every site scored on `edition`, and the published snapshot shows exactly that."""
    with connect(world["wh"]) as con:
        latest = con.sql("select max(edition) from inherent_risk_overall").fetchall()[0][0]
        scored_at = con.sql("select max(scored_at) from site_scores").fetchall()[0][0]
    assert latest == edition
    assert published(world["published"], "select distinct edition from site_scores_latest") == [(edition,)]
    assert published(world["published"], "select count(*) from site_scores_latest") == [(N_SITES,)]
    assert published(world["published"], "select max(scored_at) from site_scores_history") == [(scored_at,)]


@pytest.mark.slow
def test_every_launch_path_ends_with_current_scores_and_snapshot(world):
    from radar_pipeline.definitions import defs

    instance, wh = world["instance"], world["wh"]
    # 1. the refresh_edition JOB (what the CLI and the schedule run): edition 2025 appears
    cursor = baseline(instance)
    assert refresh_edition(2025, warehouse=wh, instance=instance).success
    _result, n = requested(instance, cursor)
    assert n["site_scores"] == N_SITES and n["risk_map"] == 1  # every site, and 2025's map
    assert n["publish"] == 0  # not beside the rescoring: on a later tick, once the scores are in
    cursor = follow_data(instance, cursor, warehouse=wh, log=lambda *_: None)
    assert_current(world, 2025)
    _, n = requested(instance, cursor)
    assert sum(n.values()) == 0  # settled: nothing more to do

    # 2. the ASSET GRAPH: "Materialize" edition 2026's assets (an ad hoc run, no job name)
    cursor = baseline(instance)
    edition_assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)
                      and a.partitions_def == editions]
    refs = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and a.partitions_def is None
            and {k.to_user_string() for k in a.keys} & {"countries", "indicator_registry", "isic",
                                                         "sector_weights"}]
    pictures = {"risk_map"}
    selection = [a for a in edition_assets if not {k.to_user_string() for k in a.keys} & pictures]
    run = dg.materialize([*selection, *refs], partition_key="2026", instance=instance,
                         selection=[k for a in selection for k in a.keys],
                         resources={"warehouse": run_settings.RadarWarehouse(database=str(wh), source="sample")},
                         raise_on_error=False, run_config=QUIET)
    assert run.success
    assert run.dagster_run.job_name != "refresh_edition"  # not the job a run-status sensor watched
    _, n = requested(instance, cursor)
    assert n["site_scores"] == N_SITES
    cursor = follow_data(instance, cursor, warehouse=wh, log=lambda *_: None)
    assert_current(world, 2026)

    # 3. a BACKFILL of a site range (score_sites over a partition range): only publish follows
    cursor = baseline(instance)
    assert score_sites(world["keys"][:5], warehouse=wh, instance=instance).success
    _, n = requested(instance, cursor)
    assert n["site_scores"] == 0 and n["publish"] == 1 and n["site_category_distribution"] == 1
    follow_data(instance, cursor, warehouse=wh, log=lambda *_: None)
    assert_current(world, 2026)


@pytest.mark.slow
def test_cli_refresh_rescores_and_publishes_without_a_daemon(world, tmp_path, monkeypatch):
    from radar_pipeline import cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    # the CLI's instance must know the sites: register them there as `radar sites ingest` does
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("sites", world["keys"])
    wh = tmp_path / "wh.duckdb"
    import shutil
    shutil.copy(world["wh"], wh)
    monkeypatch.setenv("RADAR_WAREHOUSE", str(wh))  # the CLI sets both: restored after the test
    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(settings.SAMPLE_MIRROR_DIR))
    assert cli.main(["refresh", "--edition", "2023", "--sample", "--warehouse", str(wh)]) == 0
    # scores stay on the latest edition in the warehouse (2026 from the other test or 2024)
    with connect(wh) as con:
        latest = con.sql("select max(edition) from inherent_risk_overall").fetchall()[0][0]
        fresh = con.sql("select count(distinct site_id) from site_scores where edition = $e "
                        "and scored_at > now() - interval 10 minute", params={"e": latest}).fetchall()[0][0]
    assert fresh == N_SITES
    assert published(world["published"], "select distinct edition from site_scores_latest") == [(latest,)]


# --- every offered edition from the sample -----------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("edition", editions.get_partition_keys())
def test_sample_refresh_passes_every_error_check_for_each_offered_edition(edition, tmp_path, monkeypatch):
    """`radar refresh --edition Y --sample` for every edition the UI offers (in-process runner)."""
    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(settings.SAMPLE_MIRROR_DIR))
    monkeypatch.setenv("RADAR_USER_FILES", str(tmp_path / "user"))
    outcome = refresh_edition(int(edition), warehouse=tmp_path / "wh.duckdb")
    assert outcome.success, outcome.failures
    failed = [(c.check_name, c.metadata) for c in outcome.result.get_asset_check_evaluations()
              if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR]
    assert failed == []
    with connect(tmp_path / "wh.duckdb") as con:  # clamped: no float artefact outside 1-6
        lo, hi = con.sql("select min(score), max(score) from indicator_scores").fetchall()[0]
    assert 1.0 <= lo and hi <= 6.0


def test_editions_before_the_first_supported_one_are_not_offered(monkeypatch, tmp_path, capsys):
    from radar_pipeline import cli

    assert editions.get_partition_keys()[0] == str(run_settings.first_edition())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(settings.SAMPLE_MIRROR_DIR))  # restored after: the
    monkeypatch.setenv("RADAR_WAREHOUSE", str(tmp_path / "wh.duckdb"))             # CLI sets both
    first = int(editions.get_partition_keys()[0])
    assert cli.main(["refresh", "--edition", str(first - 1), "--sample", "--no-publish",
                     "--warehouse", str(tmp_path / "wh.duckdb")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"edition {first - 1} is not offered" in err[0]
    (tmp_path / "radar.toml").write_text("[editions]\nfirst = 2019\n")
    monkeypatch.setenv("RADAR_SETTINGS", str(tmp_path / "radar.toml"))
    assert run_settings.first_edition() == 2019


# --- run settings (launchpad) ---------------------------------------------------------------------

def test_run_settings_are_launchpad_config_with_defaults_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(tmp_path))
    monkeypatch.setenv("RADAR_ALLOW_MISSING_TOPICS", "wages,children")
    monkeypatch.setenv("RADAR_PUBLISHED", str(tmp_path / "p.duckdb"))
    wh = run_settings.default_warehouse()
    assert (wh.source, wh.mirror_path, wh.allow_missing_topics) == ("mirror", str(tmp_path), ["wages", "children"])
    assert wh.published_path == str(tmp_path / "p.duckdb")
    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(settings.SAMPLE_MIRROR_DIR))
    assert run_settings.default_warehouse().source == "sample"
    # the launchpad's config schema for the refresh job has the fields, with those defaults
    from radar_pipeline.definitions import defs

    job = defs.resolve_job_def("refresh_edition")
    fields = job.run_config_schema.config_type.fields["resources"].config_type.fields["warehouse"] \
        .config_type.fields["config"].config_type.fields
    assert {"database", "source", "mirror_path", "allow_missing_topics", "published_path"} <= set(fields)
    assert not fields["source"].is_required


@pytest.mark.slow
def test_run_settings_apply_to_the_run_and_hints_name_the_ui_field(monkeypatch, tmp_path):
    monkeypatch.delenv("RADAR_SOURCES_MIRROR", raising=False)
    monkeypatch.setenv("RADAR_USER_FILES", str(tmp_path / "user"))
    from radar_pipeline.definitions import defs

    job = defs.resolve_job_def("refresh_edition")
    wh = str(tmp_path / "wh.duckdb")

    def run(**config):
        return job.execute_in_process(
            partition_key="2022", instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
            run_config={"resources": {"warehouse": {"config": {"database": wh, **config}}}})

    bad = run(source="mirror", mirror_path=str(tmp_path / "nowhere"))
    assert not bad.success
    messages = [e.message or "" for e in bad.all_events] + [
        str(e.event_specific_data.error) for e in bad.all_events if e.is_failure]
    assert any("resources.warehouse.config.mirror_path" in m for m in messages)
    # the packaged sample, chosen in the launchpad, offline; the environment is restored after
    good = run(source="sample")
    assert good.success
    import os
    assert "RADAR_SOURCES_MIRROR" not in os.environ
    # an edition with topics missing names the launchpad field as well as the CLI flag
    from radar_pipeline.country_risk.assets import country_topic_risk  # noqa: F401
    empty_mirror = tmp_path / "mirror"
    (empty_mirror / "x").mkdir(parents=True)
    assert "resources.warehouse.config.allow_missing_topics" in run_settings.UI_FIELD.format(
        "allow_missing_topics")


# --- schedule and vintage sensor ------------------------------------------------------------------

def test_annual_schedule_refreshes_the_current_edition_on_the_configured_date(monkeypatch, tmp_path):
    from radar_pipeline.definitions import defs, refresh_edition_job

    schedule = automation.build_annual_schedule(refresh_edition_job)
    assert schedule.cron_schedule == "0 6 1 4 *"  # default: 1 April, after the spring releases
    (tmp_path / "radar.toml").write_text('[schedule]\nannual_refresh = "05-15"\nhour = 3\n'
                                         '[sources]\nsource = "sample"\nallow_missing_topics = ["wages"]\n')
    monkeypatch.setenv("RADAR_SETTINGS", str(tmp_path / "radar.toml"))
    monkeypatch.delenv("RADAR_SOURCES_MIRROR", raising=False)
    schedule = automation.build_annual_schedule(refresh_edition_job)
    assert schedule.cron_schedule == "0 3 15 5 *"
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 5, 15, 3),
                                        repository_def=defs.get_repository_def())
    request = schedule.evaluate_tick(context).run_requests[0]
    assert request.partition_key == "2026"
    config = request.run_config["resources"]["warehouse"]["config"]
    assert config["source"] == "sample" and config["allow_missing_topics"] == ["wages"]
    # the config the schedule sends is one the job accepts (a renamed field would fail the run)
    dg.validate_run_config(defs.resolve_job_def("refresh_edition"), request.run_config)
    (tmp_path / "radar.toml").write_text('[schedule]\nannual_refresh = "02-30"\n')
    with pytest.raises(ValueError, match="annual_refresh must be MM-DD"):
        automation.build_annual_schedule(refresh_edition_job)


def test_new_vintage_folder_triggers_a_refresh_of_the_current_edition(monkeypatch, tmp_path):
    from radar_pipeline.definitions import defs, refresh_edition_job

    mirror = tmp_path / "mirror"
    (mirror / "ti_cpi" / "2023").mkdir(parents=True)
    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(mirror))
    monkeypatch.setenv("RADAR_LANDING", str(tmp_path / "landing"))
    sensor = automation.build_vintage_sensor(refresh_edition_job)
    first = sensor.evaluate_tick(dg.build_sensor_context(repository_def=defs.get_repository_def(), cursor=None))
    assert not first.run_requests  # what is there already is only recorded
    again = sensor.evaluate_tick(dg.build_sensor_context(repository_def=defs.get_repository_def(), cursor=first.cursor))
    assert not again.run_requests
    (tmp_path / "landing" / "ti_cpi" / "2024").mkdir(parents=True)
    new = sensor.evaluate_tick(dg.build_sensor_context(repository_def=defs.get_repository_def(), cursor=again.cursor))
    assert len(new.run_requests) == 1
    assert new.run_requests[0].partition_key == str(datetime.now().year)
    assert any("ti_cpi/2024" in v for v in json.loads(new.cursor))


# --- dagster dev / dg dev in the repository root ---------------------------------------------------

def test_dagster_dev_in_the_repo_root_keeps_the_project_instance(tmp_path, monkeypatch):
    """`dagster dev` without DAGSTER_HOME makes a throwaway instance folder in the working
    directory, configured by ./dagster.yaml (dagster._cli.utils._get_temporary_instance): the
    root dagster.yaml's storage keys make its runs, schedules and site partitions persist in
    data/dagster_home across sessions. Other homes get the file without them."""
    import shutil
    import tomllib

    import yaml
    from dagster._core.instance.ref import InstanceRef

    shutil.copy(settings.project_path("dagster.yaml"), tmp_path / "dagster.yaml")
    monkeypatch.chdir(tmp_path)
    for session, keys in ((1, ["S1"]), (2, [])):
        throwaway = tmp_path / f".tmp_dagster_home_{session}"
        throwaway.mkdir()
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(throwaway), config_dir=str(tmp_path))) as inst:
            if keys:
                inst.add_dynamic_partitions("sites", keys)
            assert inst.get_dynamic_partitions("sites") == ["S1"]  # the 2nd session sees the 1st's
            assert inst.python_log_level == "INFO"  # no DEBUG line per site partition on the console
        shutil.rmtree(throwaway)
    assert (tmp_path / "data" / "dagster_home" / "history" / "runs.db").exists()
    # a DAGSTER_HOME of its own: the same (batching sqlite) storage class, under that home
    own_home = yaml.safe_load(run_settings.instance_yaml(home=tmp_path / "elsewhere"))
    assert own_home["storage"]["custom"]["class"] == "RadarSqliteStorage"
    assert own_home["storage"]["custom"]["config"]["base_dir"] == str((tmp_path / "elsewhere").resolve())
    assert "local_artifact_storage" not in own_home and own_home["python_logs"]["python_log_level"] == "INFO"
    # dg dev / dg check defs: the same code location
    pyproject = tomllib.loads((settings.REPO_DIR / "pyproject.toml").read_text())
    assert pyproject["tool"]["dg"]["project"]["code_location_target_module"] == \
        pyproject["tool"]["dagster"]["module_name"] == "radar_pipeline.definitions"
