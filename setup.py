"""Build hook only (metadata lives in pyproject.toml).

The SQL (`sql/`) and the Dagster instance/workspace files stay at the repository's
top level (project layout), so package-data cannot name them. This hook copies them
into the built package as radar_pipeline/_project/, where `settings.project_path`
finds them in an installed wheel; an editable install reads them in place.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PROJECT_FILES = ("sql", "dagster.yaml", "dagster-postgres.yaml", "workspace.yaml")
TARGET = Path("radar_pipeline") / "_project"


class BuildPyWithProjectFiles(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # editable: settings.project_path falls back to the checkout
        for name in PROJECT_FILES:
            source, target = ROOT / name, Path(self.build_lib) / TARGET / name
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)


setup(cmdclass={"build_py": BuildPyWithProjectFiles})
