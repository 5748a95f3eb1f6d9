"""What a UI user meets when launching (issue 23 items 5 and 7): one code-location name whichever
way the UI is started, one `allow_missing_topics` in the launchpad, and a run-settings error that
fails its run once, with the project's message as the run's failure."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

import dagster as dg
import pytest

from radar_pipeline.platform import run_settings, settings

REPO = settings.REPO_DIR


def _dagster_dev_location_names(argv: list[str], cwd: Path, monkeypatch) -> list[str]:
    """Code-location names `dagster dev <argv>` started in `cwd` loads, as Dagster's own CLI
    parses the arguments and picks the target (pyproject.toml, workspace.yaml, -m ...)."""
    from dagster._cli.dev import dev_command
    from dagster._cli.workspace.cli_target import WorkspaceOpts, workspace_opts_to_load_target

    monkeypatch.chdir(cwd)
    params = dict(dev_command.make_context("dev", list(argv)).params)
    target = workspace_opts_to_load_target(WorkspaceOpts.extract_from_cli_options(params))
    return [origin.location_name for origin in target.create_origins()]


def _radar_ui_command(tmp_path: Path, monkeypatch) -> list[str]:
    """The command `radar ui` starts (subprocess.Popen captured, nothing started)."""
    import subprocess

    from radar_pipeline import cli

    started = []

    class FakeProcess:
        def __init__(self, args, **kwargs):
            started.append(list(args))

        def wait(self):
            return 0

        def send_signal(self, signum):
            pass

    saved = dict(os.environ)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RADAR_PICTURES", str(tmp_path / "pictures"))
    monkeypatch.setattr(subprocess, "Popen", FakeProcess)
    try:
        assert cli.main(["ui", "--port", "3999"]) == 0
    finally:  # radar ui sets variables for the processes it starts
        os.environ.clear()
        os.environ.update(saved)
    (command,) = started
    return command


def test_radar_ui_dagster_dev_dg_dev_and_workspace_use_one_code_location_name(tmp_path, monkeypatch):
    command = _radar_ui_command(tmp_path, monkeypatch)
    assert command[:2] == ["dagster", "dev"] and "3999" in command
    names = {
        # radar ui runs from wherever the user is, not only the repository root
        "radar ui": _dagster_dev_location_names(command[2:], tmp_path, monkeypatch),
        "dagster dev (repository root)": _dagster_dev_location_names([], REPO, monkeypatch),
        "dagster dev -w workspace.yaml": _dagster_dev_location_names(["-w", "workspace.yaml"], REPO, monkeypatch),
    }
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    dg_project = pyproject["tool"]["dg"]["project"]
    assert dg_project["code_location_target_module"] == "radar_pipeline.definitions"
    try:  # dg's own reading of [tool.dg] when dagster-dg-cli is installed (pyproject's [test] extra)
        from dagster_dg_core.context import DgContext

        names["dg dev"] = [DgContext.for_project_environment(REPO, {}).code_location_name]
    except ImportError:
        names["dg dev"] = [dg_project["code_location_name"]]
    assert all(len(found) == 1 for found in names.values()), names
    assert len({found[0] for found in names.values()}) == 1, names


def _field_paths(config_type, prefix: str = ""):
    fields = getattr(config_type, "fields", None) or {}
    for name, field in fields.items():
        yield prefix + name
        yield from _field_paths(field.config_type, f"{prefix}{name}.")


@pytest.mark.parametrize("job_name", ["refresh_edition", "__ASSET_JOB"])
def test_allow_missing_topics_appears_once_in_the_launchpad(job_name):
    from radar_pipeline.definitions import defs

    job = defs.resolve_job_def(job_name)
    found = [p for p in _field_paths(job.run_config_schema.config_type) if p.endswith("allow_missing_topics")]
    assert found == [run_settings.UI_FIELD.format("allow_missing_topics")]


@pytest.fixture
def project_instance(tmp_path, monkeypatch):
    """An instance configured as the project's dagster.yaml (run retries on), in tmp_path."""
    from dagster._core.instance.ref import InstanceRef

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(run_settings.instance_yaml(home=home), encoding="utf-8")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert instance.run_retries_enabled and instance.run_retries_max_retries >= 1
        yield instance


def _run_failure(instance: dg.DagsterInstance, run_id: str):
    (record,) = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    return record.event_log_entry.dagster_event.event_specific_data.error


@pytest.mark.parametrize("warehouse_config, message", [
    ({"source": "mirror", "mirror_path": "no-such-folder"}, "resources.warehouse.config.mirror_path = 'no-such-folder' "
                                                           "is not a folder"),
    # the same path with other fields (~6 s each on a busy machine): the slow suite
    pytest.param({"source": "files"}, "resources.warehouse.config.source = 'files': must be one of",
                 marks=pytest.mark.slow),
    pytest.param({"source": "sample", "allow_missing_topics": ["childrens"]},
                 "resources.warehouse.config.allow_missing_topics names unknown topics ['childrens']",
                 marks=pytest.mark.slow),
])
def test_a_bad_run_setting_fails_its_run_once_with_the_projects_message(project_instance, tmp_path,
                                                                        warehouse_config, message):
    from radar_pipeline.definitions import defs

    job = defs.resolve_job_def("refresh_edition")
    config = {"database": str(tmp_path / "radar.duckdb"), **warehouse_config}
    result = job.execute_in_process(partition_key="2024", instance=project_instance, raise_on_error=False,
                                    run_config={"resources": {"warehouse": {"config": config}}})
    assert not result.success
    run = project_instance.get_run_by_id(result.run_id)
    assert run.status == dg.DagsterRunStatus.FAILURE
    # the run's failure is the project's message, not "Error executing resource_fn on ResourceDefinition"
    error = _run_failure(project_instance, result.run_id)
    assert error.cls_name == "RunSettingsFailure", error.message
    assert error.message.startswith(
        f"radar_pipeline.platform.run_settings.RunSettingsFailure: {message}"), error.message
    # Dagster's run retries (dagster.yaml) decide when the run fails: no second run of the same settings
    assert run.tags.get("dagster/will_retry") == "false", run.tags
    assert not (tmp_path / "radar.duckdb").exists()  # nothing ran


def test_a_topic_setting_the_asset_rejects_is_not_retried_either(project_instance, tmp_path, monkeypatch):
    """The CLI's --allow-missing-topics reaches country_topic_risk as the launchpad's field does
    (RADAR_ALLOW_MISSING_TOPICS); an unknown topic fails the step, once."""
    from radar_pipeline.country_risk.assets import country_topic_risk
    from radar_pipeline.platform.warehouse import DuckDBWarehouse

    monkeypatch.setenv("RADAR_ALLOW_MISSING_TOPICS", "childrens")
    result = dg.materialize([country_topic_risk], partition_key="2024", instance=project_instance,
                            resources={"warehouse": DuckDBWarehouse(database=str(tmp_path / "radar.duckdb"))},
                            raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "allow_missing_topics names unknown topics ['childrens']" in failure.step_failure_data.error.message
    assert "unknown topics ['childrens']" in _run_failure(project_instance, result.run_id).message
    assert project_instance.get_run_by_id(result.run_id).tags.get("dagster/will_retry") == "false"


def test_good_run_settings_become_the_runs_environment(tmp_path):
    from radar_pipeline.rules.methodology import TOPICS

    wh = run_settings.RadarWarehouse(database=str(tmp_path / "w.duckdb"), source="mirror", mirror_path=str(tmp_path),
                                     allow_missing_topics=list(TOPICS[:2]))
    env = wh.run_environment()
    assert env["RADAR_SOURCES_MIRROR"] == str(tmp_path.resolve())
    assert env["RADAR_ALLOW_MISSING_TOPICS"] == ",".join(TOPICS[:2])
    sample = run_settings.RadarWarehouse(database=str(tmp_path / "w.duckdb"), source="sample").run_environment()
    assert sample["RADAR_SOURCES_MIRROR"] == str(settings.SAMPLE_MIRROR_DIR)
    assert sample["RADAR_ALLOW_MISSING_TOPICS"] is None
    assert run_settings.RadarWarehouse(database="x", source="live").run_environment()["RADAR_SOURCES_MIRROR"] is None


def test_dagster_dev_as_the_readme_starts_it_uses_the_project_instance_without_a_temporary_folder(
        tmp_path, monkeypatch, caplog):
    """README: `DAGSTER_HOME=$PWD dagster dev` (or dg dev) in the repository root. Dagster's CLI then
    reads the root's dagster.yaml as the instance (storage in data/dagster_home) and announces no
    temporary storage folder, which it does whenever DAGSTER_HOME is unset."""
    import logging
    import shutil

    from dagster._cli.utils import get_possibly_temporary_instance_for_cli

    for name in ("dagster.yaml", ".env"):
        shutil.copy(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)

    def session(home: str | None, key: str) -> tuple[str, list[str]]:
        if home:
            monkeypatch.setenv("DAGSTER_HOME", home)
        else:
            monkeypatch.delenv("DAGSTER_HOME", raising=False)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="dagster"), \
                get_possibly_temporary_instance_for_cli("dagster dev", logger=logging.getLogger("dagster")) as inst:
            inst.add_dynamic_partitions("sites", [key])
            return caplog.text, inst.get_dynamic_partitions("sites")

    log, _ = session(None, "S1")
    assert "temporary directory" in log  # what the README's DAGSTER_HOME=$PWD avoids
    log, keys = session(str(tmp_path), "S2")
    assert "temporary directory" not in log
    assert keys == ["S1", "S2"]  # the same storage: data/dagster_home of the working directory
    assert (tmp_path / "data" / "dagster_home" / "history" / "runs.db").exists()
