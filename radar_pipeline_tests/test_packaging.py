"""The wheel is the product: built from the repo, installed in a fresh venv, it runs the
main job from a directory outside the repo (no file of the checkout is reachable)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[1]
# what a checkout has that a build must not see (the shared venv, data, earlier builds)
NOT_SOURCE = shutil.ignore_patterns(".venv", ".git", "data", "build", "dist", "*.egg-info", "__pycache__",
                                    ".pytest_cache", "*.pyc", "tmp")


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # build from a copy: an in-tree build would write build/ and *.egg-info into the checkout
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp / "dist"), str(source)])
    (built,) = (tmp / "dist").glob("radar_pipeline-*.whl")
    return built


@pytest.mark.slow
def test_wheel_lists_every_runtime_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    sql_in_repo = {p.relative_to(REPO).as_posix() for p in (REPO / "sql").rglob("*.sql")}
    sql_in_wheel = {n.removeprefix("radar_pipeline/_project/") for n in names if n.endswith(".sql")}
    assert sql_in_repo and sql_in_repo <= sql_in_wheel, sorted(sql_in_repo - sql_in_wheel)
    for name in ("dagster.yaml", "workspace.yaml", "dagster-postgres.yaml"):
        assert f"radar_pipeline/_project/{name}" in names
    package = REPO / "radar_pipeline"
    for folder in ("rules", "sample_mirror"):
        files = {p.relative_to(REPO).as_posix() for p in (package / folder).rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts}
        assert files and files <= names, sorted(files - names)
    assert not any(n.startswith("radar_pipeline_tests/") for n in names)


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_the_sample_refresh_outside_the_repo(wheel, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    # The dependencies (dagster, duckdb, polars, ...) are reused from this venv instead of
    # downloaded: a plain path line, so this venv's own .pth files (the editable
    # radar_pipeline) are NOT processed and radar_pipeline can only come from the wheel.
    Path(purelib, "_radar_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
         "--no-index", "--ignore-installed", str(wheel)])

    workdir = tmp_path / "somewhere-else"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RADAR_", "DAGSTER_", "PYTHON"))}
    env["RADAR_BUYERS_INBOX"] = str(workdir / "buyers")
    where = run([str(python), "-c",
                 "import radar_pipeline.platform.settings as s; print(s.PACKAGE_DIR); print(s.SQL_DIR)"],
                cwd=workdir, env=env).stdout.split()
    assert Path(where[0]).is_relative_to(venv) and Path(where[1]).is_relative_to(venv), where
    assert not Path(where[0]).is_relative_to(REPO)

    out = run([str(venv / "bin" / "radar"), "refresh", "--edition", "2024", "--sample"], cwd=workdir, env=env)
    assert "Edition 2024 refreshed" in out.stdout
    con = duckdb.connect(str(workdir / "data" / "radar.duckdb"), read_only=True)
    try:
        assert con.sql("select count(*) from inherent_risk_overall where edition = 2024").fetchall()[0][0] > 0
    finally:
        con.close()
    published = workdir / "data" / "published" / "radar.duckdb"
    con = duckdb.connect(str(published), read_only=True)
    try:
        assert con.sql("select count(*) from country_risk where edition = 2024").fetchall()[0][0] > 0
    finally:
        con.close()
