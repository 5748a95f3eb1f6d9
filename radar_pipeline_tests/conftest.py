"""Shared fixtures.

`shared_sources` is the real publisher files folder (../shared/data/sources).
Tests that need it skip when it is absent on a developer machine, and fail in
CI (CI=true), where it must be present.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_SOURCES = Path(os.environ.get("RADAR_SHARED_SOURCES", REPO.parent / "shared" / "data" / "sources"))


@pytest.fixture(scope="session")
def shared_sources() -> Path:
    if not SHARED_SOURCES.is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"real publisher files are required in CI but {SHARED_SOURCES} is missing")
        pytest.skip(f"real publisher files not found at {SHARED_SOURCES}")
    return SHARED_SOURCES
